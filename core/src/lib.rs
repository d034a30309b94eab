//! kubedst-core: the Kubernetes model.

pub mod manifest;
pub mod objects;
