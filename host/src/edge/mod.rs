//! How calls reach the call router. `sim` is an in-process edge driven over HTTP: tests, demos and
//! benchmarks act as the caller (or the called party) through it.

pub mod sim;
