"""The HTTP side: the edge server, the chat socket's upgrade and handling, logins and
identities, the admin API and dashboard channel, pages and security headers."""
