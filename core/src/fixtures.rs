//! The workload most tests, examples and stand-ins start from: a Service `web` in front of a
//! Deployment `web` of `web:v1` pods with a readiness probe, so that a pod gets traffic only once
//! its app serves. One definition, so that the places that use it cannot drift apart.

use crate::manifest::load_manifests;
use crate::objects::Object;

/// The Service and Deployment as a multi-document manifest, with `replicas` pods.
pub fn web_manifests(replicas: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: "web:v1"
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
"#
    )
}

/// The objects of [`web_manifests`].
pub fn web_objects(replicas: u32) -> Vec<Object> {
    load_manifests("web.yaml", &web_manifests(replicas))
        .expect("the web fixture loads")
        .objects
        .into_iter()
        .map(|loaded| loaded.object)
        .collect()
}
