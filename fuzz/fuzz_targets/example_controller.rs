//! The library-mode example (`examples/app-operator`): an App custom resource and its operator,
//! run under a seed, a fault class and that class's faults, all decoded from the fuzzer's bytes
//! by `Simulation::run_from_bytes`. A violated invariant or an unkept App promise panics, which is
//! the finding (the example's `run_app_from_bytes` decides what counts, as its property tests do).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    kubedst_example_app_operator::run_app_from_bytes(bytes);
});
