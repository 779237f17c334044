//! The benchmark's smoke mode, run by `cargo test --workspace` (so CI runs it
//! at no extra compile cost): tiny sizes, every measurement must produce a
//! finite figure and every sync the exact result. Targets are not checked:
//! these are benchmarks, not timed tests.

use std::process::Command;

#[test]
fn smoke_mode_produces_every_figure_with_right_results() {
    let dir = std::env::temp_dir().join(format!("connectors-bench-smoke-{}", std::process::id()));
    let out = dir.join("figures.json");
    let output = Command::new(env!("CARGO_BIN_EXE_connectors-bench"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .output()
        .expect("run connectors-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "smoke run failed\n{stdout}\n{stderr}");
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).expect("figures written")).unwrap();
    assert_eq!(figures["mode"], "smoke");
    let figures = figures["figures"].as_object().expect("figures");
    for key in [
        "throughput_github_entities_per_s",
        "throughput_github_share_of_bare",
        "throughput_github_upstream_ceiling_per_s",
        "throughput_github_server_cpu_us_per_entity",
        "throughput_aws_server_cpu_us_per_entity",
        "throughput_github_bench_cpu_us_per_entity",
        "throughput_aws_bench_cpu_us_per_entity",
        "throughput_github_share_of_upstream_ceiling",
        "throughput_aws_entities_per_s",
        "throughput_aws_share_of_bare",
        "incremental_github_requests_share",
        "incremental_github_entities",
        "incremental_aws_entities",
        "memory_peak_small_mib",
        "memory_peak_large_mib",
        "memory_large_over_small",
        "memory_incremental_peak_small_mib",
        "memory_incremental_peak_large_mib",
        "latency_time_over_bound",
        "latency_speedup_over_sequential",
        "ttfe_ms",
    ] {
        let value = figures
            .get(key)
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("figure {key} missing\n{stdout}"));
        assert!(value.is_finite(), "{key} = {value}");
    }
    // Both processes work during a GitHub-shaped sync (tens of clock ticks
    // each even at smoke sizes): a CPU figure of zero is a broken measurement.
    for key in [
        "throughput_github_server_cpu_us_per_entity",
        "throughput_github_bench_cpu_us_per_entity",
    ] {
        let value = figures[key]["value"].as_f64().unwrap();
        assert!(value > 0.0, "{key} = {value}");
    }
    assert_eq!(figures["incremental_github_entities"]["value"], 0.0);
    assert_eq!(figures["incremental_aws_entities"]["value"], 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}
