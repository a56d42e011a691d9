"""Message storage: the SQLite store behind one thread, and the data files' modes."""
