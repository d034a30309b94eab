//! kubedst-core: the Kubernetes model.

pub mod manifest;
pub mod objects;
pub mod rules;
pub mod store;
