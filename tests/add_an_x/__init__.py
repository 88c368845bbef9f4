"""The "add an X" recipes of docs/ARCHITECTURE.md, each exercised end to end by a test: every
toy here lives in its own file and is registered by one line (its decorator or register call)."""
