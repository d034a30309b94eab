//! kubedst-core: the Kubernetes model.

pub mod api;
pub mod cache;
pub mod controller;
pub mod controllers;
pub mod manifest;
pub mod objects;
pub mod rules;
pub mod store;
