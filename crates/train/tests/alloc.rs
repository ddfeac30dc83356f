//! After warm-up, a training step allocates nothing: a counting global allocator watches steps of
//! a full batch and of the smaller last batch, in this binary only.
//!
//! With OpenBLAS the count must be exactly zero. The pure-Rust matrixmultiply allocates its
//! packing buffer inside every GEMM call (18 per deep step), which this project's code cannot
//! reuse; there the bound is one allocation per GEMM and nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use train::synthetic::SyntheticSpec;
use train::{Experiment, FeatureKind, FeatureSpec, Trainer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn training_steps_do_not_allocate_after_warm_up() {
    let spec = SyntheticSpec { n_ratings: 12_000, ..SyntheticSpec::MOVIELENS_100K };
    // GEMMs per step: per dense layer 1 forward + 2 backward; the score core 1 + 2 in each of its
    // two halves of query rows.
    for (name, gemms_per_step, config, probability) in [
        ("deep [64, 32]", 4 * 3 + 2 * 3, Experiment::Deep2.config(1), None),
        (
            "basic + logQ + hits",
            2 * 3,
            {
                let mut c = Experiment::Basic.config(1);
                c.logq = true;
                c.remove_accidental_hits = true;
                c
            },
            Some(vec![0.001f32; spec.n_candidates + 1]),
        ),
        (
            "genres, user segment, mixed negatives, L2-normalised",
            4 * 3 + 2 * 3,
            {
                let mut c = Experiment::Deep2.config(1);
                c.model.candidate.features.push(FeatureSpec::new(FeatureKind::Multi, "genres"));
                c.model.query.features.push(FeatureSpec::new(FeatureKind::Id, "segment"));
                c.model.query.features.push(FeatureSpec::new(FeatureKind::Numeric, "age"));
                c.mixed_negatives = Some(256);
                c.model.query.l2_normalize = true;
                c.model.candidate.l2_normalize = true;
                c.temperature = Some(0.1);
                c
            },
            None,
        ),
    ] {
        let batch_size = 2048;
        let synthetic = spec.prepare(1, &config);
        let (data, split) = (&synthetic.encoded, &synthetic.split);
        let mut trainer = Trainer::new(config.validate().unwrap(), synthetic.model.clone());
        let mut grads = trainer.new_grads();
        let full: Vec<&[usize]> = split.train.chunks(batch_size).filter(|b| b.len() == batch_size).take(3).collect();
        let last = &split.train[..batch_size / 16];
        // On a worker of rayon's pool, as `fit` runs its steps: joins injected from outside the
        // pool go through rayon's injector queue, which allocates a block every 63 jobs.
        let allocations = rayon::scope(|_| {
            // Warm-up: the largest batch sizes grow every buffer once.
            trainer.step(data, full[0], probability.as_deref(), &mut grads);
            trainer.step(data, last, probability.as_deref(), &mut grads);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for rows in [full[1], last, full[2]] {
                trainer.step(data, rows, probability.as_deref(), &mut grads);
            }
            ALLOCATIONS.load(Ordering::Relaxed) - before
        });
        let allowed = if tensor::matmul::USES_BLAS { 0 } else { 3 * gemms_per_step };
        assert!(
            allocations <= allowed,
            "{name}: {allocations} allocations in three steps after warm-up (allowed {allowed})"
        );
    }
}
