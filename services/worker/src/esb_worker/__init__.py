"""ESB background worker: processes JSON jobs dropped into a spool directory."""
