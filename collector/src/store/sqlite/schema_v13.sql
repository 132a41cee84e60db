-- Schema version 13: the identity facts an agent stated at enrollment (machine id, DMI product
-- UUID and serial, MAC addresses, cloud instance id; never its install key), for
-- reconciliation with asset registers.
ALTER TABLE agents ADD COLUMN identity_json TEXT;
