//! The CI examples are real: the Kubernetes Indexed Job manifest loads with kubedst's own loader,
//! and the arguments it gives each pod run a shard of a sweep whose shards merge into the whole.

use kubedst_core::manifest::load_manifests;
use kubedst_core::objects::Object;
use std::process::Command;

const INDEXED_JOB: &str = include_str!("../examples/ci/sweep-indexed-job.yaml");

/// The container's `args` as written, in order (the model keeps no args, so they are read from
/// the manifest text: one `- item` per line under `args:`).
fn container_args(text: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|line| line.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for line in &mut lines {
        let Some(item) = line.trim().strip_prefix("- ") else { break };
        args.push(item.trim_matches('"').to_string());
    }
    args
}

#[test]
fn the_indexed_job_manifest_loads_and_its_pods_run_shards_that_merge() {
    let loaded = load_manifests("examples/ci/sweep-indexed-job.yaml", INDEXED_JOB).expect("the manifest loads");
    assert_eq!(loaded.objects.len(), 1);
    let Object::Job(job) = &loaded.objects[0].object else { panic!("a Job: {:?}", loaded.objects[0].object) };
    assert_eq!((job.spec.completions, job.spec.parallelism), (Some(4), Some(4)));
    // Fields the model does not simulate are reported, never dropped silently.
    let warned: Vec<&str> = loaded.warnings.iter().map(|warning| warning.path.as_str()).collect();
    assert!(warned.iter().any(|path| path.contains("args")), "{warned:?}");

    let args = container_args(INDEXED_JOB);
    assert_eq!(args[0], "sweep");
    assert!(args.windows(2).any(|pair| pair[0] == "--shard" && pair[1] == "$(JOB_COMPLETION_INDEX)/4"), "{args:?}");
    let directory = std::env::temp_dir().join(format!("kubedst-ci-examples-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let results = directory.to_str().unwrap().to_string();
    let mut summaries = Vec::new();
    for index in 0..4 {
        // What Kubernetes does for pod `index`: expand $(JOB_COMPLETION_INDEX); the shared volume
        // is a scratch directory here, and the sweep is 8 seeds instead of 4,000.
        let pod_args: Vec<String> = args
            .iter()
            .map(|arg| arg.replace("$(JOB_COMPLETION_INDEX)", &index.to_string()).replace("/results", &results))
            .map(|arg| if arg == "0..4000" { "0..8".to_string() } else { arg })
            .collect();
        let output = Command::new(env!("CARGO_BIN_EXE_kubedst")).args(&pod_args).output().unwrap();
        assert!(
            matches!(output.status.code(), Some(0) | Some(1)),
            "shard {index}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        summaries.push(format!("{results}/summary-{index}.json"));
    }
    let merged = Command::new(env!("CARGO_BIN_EXE_kubedst"))
        .arg("sweep-merge")
        .args(&summaries)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&merged.stdout).expect("a JSON summary");
    assert_eq!(summary["runs"], 8, "{summary}");
    std::fs::remove_dir_all(&directory).unwrap();
}
