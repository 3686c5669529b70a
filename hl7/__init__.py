"""The HL7 v2 edge: MLLP framing, ER7 parsing to domain inputs, ACKs, the listener and client."""
