"""`make mutation`: seeded faults in the chat core, run against the tests that cover them."""
