//! kubedst-core: the Kubernetes model.
