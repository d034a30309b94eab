//! kubedst-core: the Kubernetes model.

pub mod api;
pub mod cache;
pub mod controller;
pub mod kubelet_logic;
pub mod manifest;
pub mod objects;
pub mod proxy;
pub mod rules;
pub mod runtime;
pub mod store;
