//! kubedst-core: the Kubernetes model.

pub mod rules;
pub mod store;
