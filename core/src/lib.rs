//! kubedst-core: the Kubernetes model.

// A guard folded into a match arm hides a second condition in a pattern; nested ifs read better here.
#![allow(clippy::collapsible_match)]

pub mod api;
pub mod apiserver;
pub mod cache;
pub mod checkers;
pub mod client;
pub mod cloud;
pub mod cluster;
pub mod controller;
pub mod controllers;
pub mod drain;
pub mod etcd;
pub mod fixtures;
pub mod harness;
pub mod host;
pub mod kubectl;
pub mod kubelet_logic;
pub mod leader;
pub mod manifest;
pub mod metrics;
pub mod mutants;
pub mod node;
pub mod objects;
pub mod proxy;
pub mod rbac;
pub mod rules;
pub mod runtime;
pub mod store;
