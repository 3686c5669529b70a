"""The composition root: the `flagging` command wires config, domain and both edges together."""
