//! The Merkle tree against a naive full recomputation (the RFC 9162
//! definitions of MTH, PATH and SUBPROOF written as plain recursion over the
//! leaf hashes): every size from 1 to 2,000, then random sizes and pairs up to
//! 1,000,000 leaves (CHAINLOG_MERKLE_CASES of each, default 1,000).

use engine::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root_at,
    verify_consistency, verify_inclusion, Frontier, MemoryTree, SizeError, VerifyError,
};
use engine::testing::Rng;
use engine::Hash;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

/// k: the largest power of two smaller than n (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() == 1 {
        return Vec::new();
    }
    let k = split(d.len());
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn flip(h: &Hash, byte: usize) -> Hash {
    let mut h = *h;
    h[byte % 32] ^= 0x40;
    h
}

/// The inclusion proof of `index` in `size` verifies, and fails with the
/// right reason for a flipped proof byte, a flipped leaf, another index and a
/// shortened or lengthened proof.
fn check_inclusion(
    tree: &MemoryTree,
    index: u64,
    size: u64,
    leaf: &Hash,
    root: &Hash,
    rng: &mut Rng,
) {
    let proof = inclusion_proof(tree, index, size).expect("prove");
    assert_eq!(verify_inclusion(index, size, leaf, &proof, root), Ok(()));
    if !proof.is_empty() {
        let mut bad = proof.clone();
        let at = rng.below(bad.len() as u64) as usize;
        bad[at] = flip(&bad[at], rng.below(32) as usize);
        assert!(matches!(
            verify_inclusion(index, size, leaf, &bad, root),
            Err(VerifyError::RootMismatch { .. })
        ));
        assert_eq!(
            verify_inclusion(index, size, leaf, &proof[1..], root),
            Err(VerifyError::ProofLength {
                expected: proof.len(),
                found: proof.len() - 1
            })
        );
    }
    assert!(matches!(
        verify_inclusion(index, size, &flip(leaf, 0), &proof, root),
        Err(VerifyError::RootMismatch { .. })
    ));
    let mut longer = proof.clone();
    longer.push(*root);
    assert_eq!(
        verify_inclusion(index, size, leaf, &longer, root),
        Err(VerifyError::ProofLength {
            expected: proof.len(),
            found: proof.len() + 1
        })
    );
    // Another index (the same proof, claimed for a neighbour) never passes.
    for other in [index ^ 1, index.wrapping_add(1), index.wrapping_sub(1)] {
        if other != index {
            assert!(verify_inclusion(other, size, leaf, &proof, root).is_err());
        }
    }
    assert_eq!(
        verify_inclusion(size, size, leaf, &proof, root),
        Err(VerifyError::Size(SizeError::IndexOutOfRange {
            index: size,
            size
        }))
    );
}

/// The consistency proof from `old` to `new` verifies, and fails with the
/// right reason for a flipped byte, a wrong root, swapped sizes and a
/// changed length.
fn check_consistency(tree: &MemoryTree, old: u64, new: u64, roots: (&Hash, &Hash), rng: &mut Rng) {
    let (old_root, new_root) = roots;
    let proof = consistency_proof(tree, old, new).expect("prove");
    assert_eq!(
        verify_consistency(old, new, old_root, new_root, &proof),
        Ok(())
    );
    if old == new {
        assert!(proof.is_empty());
        return;
    }
    let mut bad = proof.clone();
    let at = rng.below(bad.len() as u64) as usize;
    bad[at] = flip(&bad[at], rng.below(32) as usize);
    assert!(matches!(
        verify_consistency(old, new, old_root, new_root, &bad),
        Err(VerifyError::OldRootMismatch { .. } | VerifyError::NewRootMismatch { .. })
    ));
    // A perfect old tree's root seeds the walk, so a wrong one shows in the
    // new root; otherwise the proof rebuilds the old root and it differs.
    let wrong_old = verify_consistency(old, new, &flip(old_root, 5), new_root, &proof);
    if old.is_power_of_two() {
        assert!(matches!(
            wrong_old,
            Err(VerifyError::NewRootMismatch { .. })
        ));
    } else {
        assert!(matches!(
            wrong_old,
            Err(VerifyError::OldRootMismatch { .. })
        ));
    }
    assert!(matches!(
        verify_consistency(old, new, old_root, &flip(new_root, 7), &proof),
        Err(VerifyError::NewRootMismatch { .. })
    ));
    assert_eq!(
        verify_consistency(new, old, new_root, old_root, &proof),
        Err(VerifyError::Size(SizeError::OldSizeGreater {
            old_size: new,
            new_size: old
        }))
    );
    assert_eq!(
        verify_consistency(old, new, old_root, new_root, &proof[1..]),
        Err(VerifyError::ProofLength {
            expected: proof.len(),
            found: proof.len() - 1
        })
    );
    // (Another size with the same roots is not checked: a proof binds roots,
    // and a checkpoint's signature binds each root to its size. A proof for
    // (2, 4), one hash, also verifies as (2, 3) with the 4-leaf root.)
}

#[test]
fn every_size_to_2000_matches_the_naive_tree() {
    const N: u64 = 2000;
    let d = leaves(N);
    let mut tree = MemoryTree::new();
    let mut frontier = Frontier::new();
    let mut roots = vec![[0u8; 32]];
    let mut rng = Rng::new(15);
    for (i, l) in d.iter().enumerate() {
        tree.push(*l);
        frontier.push(*l);
        let n = i + 1;
        let naive = mth(&d[..n]);
        assert_eq!(frontier.root(), naive, "frontier root at {n}");
        assert_eq!(root_at(&tree, n as u64), Ok(naive), "stored root at {n}");
        assert_eq!(Frontier::decode(&frontier.encode()).as_ref(), Ok(&frontier));
        roots.push(naive);
    }
    for n in 1..=N {
        let size = n as usize;
        // The first and last leaf and one at random: checked against the
        // naive PATH for the random one (each naive proof costs n hashes).
        let m = rng.below(n);
        assert_eq!(
            inclusion_proof(&tree, m, n).expect("prove"),
            path(m as usize, &d[..size]),
            "PATH({m}, {n})"
        );
        for index in [0, n - 1, m] {
            check_inclusion(&tree, index, n, &d[index as usize], &roots[size], &mut rng);
        }
        let old = 1 + rng.below(n);
        assert_eq!(
            consistency_proof(&tree, old, n).expect("prove"),
            subproof(old as usize, &d[..size], true),
            "PROOF({old}, {n})"
        );
        for old in [1, n, old, n / 2 + 1] {
            check_consistency(
                &tree,
                old,
                n,
                (&roots[old as usize], &roots[size]),
                &mut rng,
            );
        }
    }
}

#[test]
fn all_proofs_of_small_trees_match_the_naive_tree() {
    const N: u64 = 70;
    let d = leaves(N);
    let mut tree = MemoryTree::new();
    for l in &d {
        tree.push(*l);
    }
    for n in 1..=N as usize {
        for m in 0..n {
            assert_eq!(
                inclusion_proof(&tree, m as u64, n as u64).expect("prove"),
                path(m, &d[..n])
            );
        }
        for m in 1..=n {
            assert_eq!(
                consistency_proof(&tree, m as u64, n as u64).expect("prove"),
                subproof(m, &d[..n], true)
            );
        }
    }
}

#[test]
fn random_sizes_and_pairs_to_a_million_leaves() {
    const N: u64 = 1_000_000;
    let cases: u64 = std::env::var("CHAINLOG_MERKLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let d = leaves(N);
    let mut rng = Rng::new(0x15_15);
    // Sizes at which the frontier's root is recorded while the tree grows.
    let mut sizes: Vec<u64> = (0..cases).map(|_| 1 + rng.below(N)).collect();
    sizes.extend([1, 2, N - 1, N, 1 << 19, (1 << 19) + 1]);
    sizes.sort_unstable();
    sizes.dedup();
    let mut tree = MemoryTree::new();
    let mut frontier = Frontier::new();
    let mut roots = std::collections::BTreeMap::new();
    let mut next = sizes.iter().peekable();
    for l in &d {
        tree.push(*l);
        frontier.push(*l);
        if next.next_if_eq(&&frontier.size()).is_some() {
            roots.insert(frontier.size(), frontier.root());
        }
    }
    assert_eq!(roots.len(), sizes.len());
    // The naive tree, once, at full size and one random size.
    assert_eq!(roots[&N], mth(&d));
    let some = sizes[sizes.len() / 2];
    assert_eq!(roots[&some], mth(&d[..some as usize]));
    for (&size, root) in &roots {
        assert_eq!(root_at(&tree, size).as_ref(), Ok(root), "root at {size}");
        assert_eq!(
            Frontier::from_source(&tree, size)
                .map(|f| f.root())
                .as_ref(),
            Ok(root)
        );
    }
    let recorded: Vec<u64> = roots.keys().copied().collect();
    for _ in 0..cases {
        let size = recorded[rng.below(recorded.len() as u64) as usize];
        let index = rng.below(size);
        check_inclusion(
            &tree,
            index,
            size,
            &d[index as usize],
            &roots[&size],
            &mut rng,
        );
        let a = recorded[rng.below(recorded.len() as u64) as usize];
        let b = recorded[rng.below(recorded.len() as u64) as usize];
        let (old, new) = (a.min(b), a.max(b));
        check_consistency(&tree, old, new, (&roots[&old], &roots[&new]), &mut rng);
    }
}
