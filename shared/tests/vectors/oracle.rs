//! Independent implementations of the public formulas, written from PROTOCOL.md
//! for this test alone: none of them calls `overlaps_shared`. Keccak-256, HMAC and
//! Ed25519 come straight from the `sha3`, `hmac`/`sha2` and `ed25519-dalek` crates;
//! ChaCha20 and Walker's alias method are written out here.

use sha3::{Digest, Keccak256};

/// Keccak-256 of the concatenation of `parts`.
pub fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The first 8 bytes of `digest` as a big-endian integer.
pub fn u64_be(digest: &[u8; 32]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().unwrap())
}

// ---- ChaCha20 (RFC 8439 block function, 64-bit counter, 64-bit stream 0) ----

/// A ChaCha20 keystream read as little-endian 32-bit words, as rand_chacha's
/// `ChaCha20Rng::from_seed` gives them.
pub struct ChaCha20 {
    key: [u32; 8],
    counter: u64,
    block: [u32; 16],
    next: usize,
}

impl ChaCha20 {
    pub fn new(seed: [u8; 32]) -> Self {
        let key =
            std::array::from_fn(|i| u32::from_le_bytes(seed[4 * i..4 * i + 4].try_into().unwrap()));
        ChaCha20 {
            key,
            counter: 0,
            block: [0; 16],
            next: 16,
        }
    }

    fn refill(&mut self) {
        let mut input = [0u32; 16];
        input[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        input[4..12].copy_from_slice(&self.key);
        input[12] = self.counter as u32;
        input[13] = (self.counter >> 32) as u32;
        let mut x = input;
        fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(16);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(12);
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(8);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(7);
        }
        for _ in 0..10 {
            quarter(&mut x, 0, 4, 8, 12);
            quarter(&mut x, 1, 5, 9, 13);
            quarter(&mut x, 2, 6, 10, 14);
            quarter(&mut x, 3, 7, 11, 15);
            quarter(&mut x, 0, 5, 10, 15);
            quarter(&mut x, 1, 6, 11, 12);
            quarter(&mut x, 2, 7, 8, 13);
            quarter(&mut x, 3, 4, 9, 14);
        }
        for (out, (mixed, original)) in self.block.iter_mut().zip(x.iter().zip(input.iter())) {
            *out = mixed.wrapping_add(*original);
        }
        self.counter += 1;
        self.next = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.next == 16 {
            self.refill();
        }
        self.next += 1;
        self.block[self.next - 1]
    }

    /// A uniform integer in `0..range` (Lemire's method with rejection, as rand 0.9).
    pub fn below(&mut self, range: u32) -> u32 {
        let threshold = range.wrapping_neg() % range;
        loop {
            let product = u64::from(self.next_u32()) * u64::from(range);
            if (product as u32) >= threshold {
                return (product >> 32) as u32;
            }
        }
    }
}

// ---- Walker's alias method (Vose's construction, as rand_distr 0.5) ----

struct AliasTable {
    odds: Vec<u32>,
    alias: Vec<u32>,
    sum: u32,
}

impl AliasTable {
    fn new(weights: &[u32]) -> Self {
        let n = weights.len() as u32;
        let sum: u32 = weights.iter().sum();
        let mut odds: Vec<u32> = weights.iter().map(|w| w * n).collect();
        let mut alias = vec![0u32; weights.len()];
        let (mut small, mut big) = (Vec::new(), Vec::new());
        for (i, &o) in odds.iter().enumerate() {
            if o < sum { small.push(i) } else { big.push(i) }
        }
        while let (Some(&s), Some(&b)) = (small.last(), big.last()) {
            small.pop();
            big.pop();
            alias[s] = b as u32;
            odds[b] = odds[b] - sum + odds[s];
            if odds[b] < sum {
                small.push(b)
            } else {
                big.push(b)
            }
        }
        for i in small.into_iter().chain(big) {
            odds[i] = sum;
        }
        AliasTable { odds, alias, sum }
    }

    fn sample(&self, rng: &mut ChaCha20) -> usize {
        let candidate = rng.below(self.odds.len() as u32) as usize;
        if rng.below(self.sum) < self.odds[candidate] {
            candidate
        } else {
            self.alias[candidate] as usize
        }
    }
}

/// The validators chosen for `website_id` in the round with `seed`.
pub fn choose(
    seed: &[u8; 32],
    website_id: i64,
    candidates: &[(i64, u32, Option<String>)],
    quorum: usize,
) -> Vec<i64> {
    let mut pool: Vec<(i64, u32, Option<String>)> = Vec::new();
    let mut sorted: Vec<(i64, u32, Option<String>)> =
        candidates.iter().filter(|c| c.1 > 0).cloned().collect();
    sorted.sort_by_key(|c| c.0);
    for c in sorted {
        if pool.last().map(|p| p.0) != Some(c.0) {
            pool.push(c);
        }
    }
    let mut seen: Vec<&String> = Vec::new();
    let mut shared_network = false;
    for network in pool.iter().filter_map(|c| c.2.as_ref()) {
        shared_network |= seen.contains(&network);
        seen.push(network);
    }
    if pool.len() <= quorum && !shared_network {
        return pool.iter().map(|c| c.0).collect();
    }
    let mut rng = ChaCha20::new(keccak(&[seed, &website_id.to_be_bytes()]));
    let mut chosen: Vec<i64> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    let clash = |c: &(i64, u32, Option<String>), chosen: &[i64], taken: &[String]| {
        chosen.contains(&c.0) || c.2.as_ref().is_some_and(|n| taken.contains(n))
    };
    'tables: while chosen.len() < quorum && !pool.is_empty() {
        let weights: Vec<u32> = pool.iter().map(|c| c.1).collect();
        let table = AliasTable::new(&weights);
        loop {
            let picked = pool[table.sample(&mut rng)].clone();
            if clash(&picked, &chosen, &taken) {
                pool.retain(|c| !clash(c, &chosen, &taken));
                continue 'tables;
            }
            chosen.push(picked.0);
            taken.extend(picked.2);
            if chosen.len() == quorum {
                break 'tables;
            }
        }
    }
    chosen
}

// ---- The reward tree (OpenZeppelin MerkleProof: sorted pairs) ----

/// `keccak256(bytes.concat(keccak256(abi.encode(address, uint256 amount))))`.
pub fn leaf(address: &[u8; 20], amount_be: &[u8; 32]) -> [u8; 32] {
    let mut encoded = [0u8; 64];
    encoded[12..32].copy_from_slice(address);
    encoded[32..].copy_from_slice(amount_be);
    keccak(&[&keccak(&[&encoded])])
}

/// A decimal integer as a 32-byte big-endian `uint256`.
pub fn uint256(decimal: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for digit in decimal.bytes() {
        assert!(digit.is_ascii_digit(), "{decimal}");
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "{decimal} overflows 256 bits");
    }
    out
}

/// OpenZeppelin's `_hashPair`: the hash of the smaller then the larger.
pub fn pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    if a <= b {
        keccak(&[a, b])
    } else {
        keccak(&[b, a])
    }
}

/// OpenZeppelin's `MerkleProof.processProof`.
pub fn process_proof(leaf: [u8; 32], proof: &[[u8; 32]]) -> [u8; 32] {
    proof
        .iter()
        .fold(leaf, |node, sibling| pair(&node, sibling))
}

/// Every layer from the leaves up: nodes 2k and 2k+1 make node k of the next
/// layer; a last node without a partner moves up unchanged.
pub fn layers(leaves: &[[u8; 32]]) -> Vec<Vec<[u8; 32]>> {
    let mut layers = vec![leaves.to_vec()];
    while layers.last().unwrap().len() > 1 {
        let below = layers.last().unwrap();
        let above = below
            .chunks(2)
            .map(|two| {
                if two.len() == 2 {
                    pair(&two[0], &two[1])
                } else {
                    two[0]
                }
            })
            .collect();
        layers.push(above);
    }
    layers
}

/// The proof of leaf `index`: its sibling on each layer that has one.
pub fn proof(layers: &[Vec<[u8; 32]>], index: usize) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let mut node = index;
    for layer in &layers[..layers.len() - 1] {
        if let Some(sibling) = layer.get(node ^ 1) {
            out.push(*sibling);
        }
        node /= 2;
    }
    out
}

/// Appends a u16-length-prefixed string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// JSON with object keys sorted and no whitespace, written out by hand.
pub fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// The check-spec bytes of PROTOCOL.md §4 from a `validate` message.
pub fn spec_bytes(m: &serde_json::Value) -> Vec<u8> {
    let mut out = b"overlaps/v2/check-spec".to_vec();
    out.push(0);
    let url = m["url"].as_str().unwrap();
    // kind: http(s) 1, tcp 2, dns 3
    out.push(if url.starts_with("tcp://") {
        2
    } else if url.starts_with("dns://") {
        3
    } else {
        1
    });
    put_str(&mut out, m["url"].as_str().unwrap());
    put_str(&mut out, m["method"].as_str().unwrap());
    out.extend_from_slice(&(m["timeout_ms"].as_u64().unwrap() as u32).to_be_bytes());
    let ranges: Vec<(u16, u16)> = match m.get("accepted_status") {
        Some(list) => list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["from"].as_u64().unwrap() as u16,
                    r["to"].as_u64().unwrap() as u16,
                )
            })
            .collect(),
        None => vec![(200, 399)],
    };
    out.push(ranges.len() as u8);
    for (from, to) in ranges {
        out.extend_from_slice(&from.to_be_bytes());
        out.extend_from_slice(&to.to_be_bytes());
    }
    match m.get("keyword") {
        None => out.push(0),
        Some(k) => {
            let absent = m.get("keyword_absent").is_some_and(|a| a == true);
            out.push(if absent { 2 } else { 1 });
            put_str(&mut out, k.as_str().unwrap());
        }
    }
    match (m.get("json_path"), m.get("json_expected")) {
        (Some(path), Some(expected)) => {
            out.push(1);
            put_str(&mut out, path.as_str().unwrap());
            put_str(&mut out, &canonical(expected));
        }
        _ => out.push(0),
    }
    match m.get("max_response_ms") {
        None => out.push(0),
        Some(limit) => {
            out.push(1);
            out.extend_from_slice(&(limit.as_u64().unwrap() as u32).to_be_bytes());
        }
    }
    out
}
