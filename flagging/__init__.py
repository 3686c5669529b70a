"""The domain: organisations, inbound messages, documents and the use cases that act on them."""
