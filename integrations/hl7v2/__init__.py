"""HL7 v2 inbound interface: PM systems send ADT and SIU messages over MLLP."""
