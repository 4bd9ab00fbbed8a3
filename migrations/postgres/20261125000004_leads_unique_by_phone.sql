-- One index fewer per imported lead. `UNIQUE (campaign_id, phone)` and `leads_by_phone (phone)`
-- both kept phone numbers in random order, so every imported lead cost two random-position
-- B-tree inserts. `UNIQUE (phone, campaign_id)` serves both: the import's duplicate check and
-- the look-ups by phone (inbound calls, do-not-call), which use its first column.
ALTER TABLE leads ADD CONSTRAINT leads_phone_campaign_id_key UNIQUE (phone, campaign_id);
ALTER TABLE leads DROP CONSTRAINT leads_campaign_id_phone_key;
DROP INDEX leads_by_phone;
