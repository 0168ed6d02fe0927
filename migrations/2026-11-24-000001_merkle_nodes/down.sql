-- Back to a leaf hash and a proof per leaf, cut from the stored layers: the leaf
-- hash is node `leaf_index` of layer 0; the proof the sibling on each layer below
-- the root, where there is one (layer g is ceil(leaf_count / 2^g) nodes wide).
ALTER TABLE merkle_leaves ADD COLUMN leaf_hash BYTEA, ADD COLUMN proof BYTEA;
UPDATE merkle_leaves l SET
    leaf_hash = (
        SELECT substring(n.hashes FROM (l.leaf_index % 4096) * 32 + 1 FOR 32)
        FROM merkle_nodes n
        WHERE n.eon = l.eon AND n.layer = 0 AND n.chunk = l.leaf_index / 4096
    ),
    proof = (
        SELECT coalesce(string_agg(substring(n.hashes FROM (s.sibling % 4096) * 32 + 1 FOR 32), ''::bytea ORDER BY s.layer), ''::bytea)
        FROM (
            SELECT g AS layer, (l.leaf_index >> g) # 1 AS sibling,
                   (c.leaf_count + (1 << g) - 1) >> g AS width
            FROM root_commitments c, generate_series(0, 30) AS g
            WHERE c.eon = l.eon
        ) s
        JOIN merkle_nodes n ON n.eon = l.eon AND n.layer = s.layer AND n.chunk = s.sibling / 4096
        WHERE s.width > 1 AND s.sibling < s.width
    );
-- Leaves of an eon whose tree was never stored get no proof.
DELETE FROM merkle_leaves WHERE leaf_hash IS NULL;
ALTER TABLE merkle_leaves
    ALTER COLUMN leaf_hash SET NOT NULL,
    ALTER COLUMN proof SET NOT NULL,
    ADD CHECK (length(leaf_hash) = 32),
    ADD CHECK (length(proof) % 32 = 0);
DROP TABLE merkle_nodes;
