"""The `flagging` commands, one module a concern; cli/main.py assembles them into one parser."""
