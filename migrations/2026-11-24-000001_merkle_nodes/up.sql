-- An eon's tree is stored once, layer by layer, and a proof is cut from it on read:
-- a million leaves' tree is 64 MB of nodes, where a stored proof per leaf was 640 MB.
-- Each row holds up to 4,096 consecutive hashes of one layer (`merkle::NODE_CHUNK`);
-- layer 0 holds the leaf hashes, the last layer the root.
CREATE TABLE merkle_nodes (
    eon     BIGINT NOT NULL REFERENCES eons (number) ON DELETE CASCADE,
    layer   SMALLINT NOT NULL CHECK (layer >= 0),
    chunk   INTEGER NOT NULL CHECK (chunk >= 0),
    hashes  BYTEA NOT NULL CHECK (length(hashes) BETWEEN 32 AND 4096 * 32 AND length(hashes) % 32 = 0),
    PRIMARY KEY (eon, layer, chunk)
);
-- Out of line and uncompressed (hashes do not compress): substring() then reads
-- only the pages holding the 32 bytes a proof needs.
ALTER TABLE merkle_nodes ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- Leaf hashes and proofs of eons closed before are not carried over: the leaves
-- (address, amount, position) are, and accounting rebuilds those eons' trees from
-- them at start-up, checking each against its stored root.
ALTER TABLE merkle_leaves DROP COLUMN proof, DROP COLUMN leaf_hash;
