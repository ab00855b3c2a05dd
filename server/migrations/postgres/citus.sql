-- Distributing a fieldsync database by case with Citus. Not applied by
-- fieldsync: an operator who outgrows one PostgreSQL node runs it once on
-- the Citus coordinator, after the first `fieldsync serve` or `admin`
-- command has made the schema, and points every process at the
-- coordinator (the case locks are advisory locks on the node a process
-- talks to). The schema needs no change for it; the test
-- `the_schema_is_distributable_by_case_as_citus_sql_says` checks the
-- rules Citus sets against the live catalog, and
-- `the_unscoped_queries_are_exactly_the_listed_ones` that the sync, feed
-- and upload paths touch one case.
--
-- Reference tables: small, looked up by a key that is global by design
-- (a device by its id, a browser session by its cookie), copied to every
-- node. Every other table is distributed by `case_id` and colocated, so
-- one case's rows, and every query of one round, are on one node.

SELECT create_reference_table('cases');
SELECT create_reference_table('devices');
SELECT create_reference_table('invites');
SELECT create_reference_table('web_sessions');
SELECT create_reference_table('report_ids');
SELECT create_reference_table('fieldsync_schema');

SELECT create_distributed_table('documents', 'case_id');
SELECT create_distributed_table('changes', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('timeline', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('timeline_tags', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('nonces', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('audit_log', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('uploads', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('blobs', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('blob_refs', 'case_id', colocate_with => 'documents');
SELECT create_distributed_table('case_public_keys', 'case_id', colocate_with => 'documents');
