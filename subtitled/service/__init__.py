"""The daemon: its lifecycle (threads, signals, reload, notify, health) and the worker."""
