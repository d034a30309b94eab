//! kubedst-core: the Kubernetes model.

pub mod objects;
pub mod manifest;
