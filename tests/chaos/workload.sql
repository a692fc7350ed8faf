-- The chaos run's SQL workload: a few hundred thousand rows built, indexed,
-- joined, aggregated and printed. Deterministic output.
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT, f REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000)
INSERT INTO t SELECT i, (i * 7919) % 1009, printf('row-%08d-%s', i, hex(i * 31)), i / 3.0 FROM c;
CREATE INDEX t_k ON t(k);
CREATE TABLE u AS SELECT k, count(*) AS n, sum(f) AS s, max(v) AS m FROM t GROUP BY k;
SELECT count(*), sum(k), total(f) FROM t;
SELECT k, n, printf('%.3f', s), m FROM u ORDER BY n DESC, k LIMIT 20;
SELECT t.k, count(*) FROM t JOIN u ON t.k = u.k WHERE u.n > 190 GROUP BY t.k ORDER BY t.k LIMIT 30;
UPDATE t SET v = upper(v) WHERE id % 13 = 0;
DELETE FROM t WHERE id % 17 = 0;
SELECT count(*), sum(length(v)), min(v), max(v) FROM t;
SELECT group_concat(v, ',') FROM (SELECT v FROM t WHERE k = 5 ORDER BY id LIMIT 50);
VACUUM;
SELECT count(*), sum(id) FROM t WHERE v LIKE 'ROW-%';
