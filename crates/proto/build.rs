//! Compiles every `.proto` file under `<repo>/proto` with protox (pure Rust,
//! no system `protoc`), writes the encoded `FileDescriptorSet` to
//! `$OUT_DIR/psirt_descriptor.bin`, and generates the Rust messages, gRPC
//! clients and servers with tonic-prost-build from that descriptor set.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// File name (in `OUT_DIR`) of the encoded descriptor set; `src/lib.rs`
/// includes it as `FILE_DESCRIPTOR_SET`.
const DESCRIPTOR_FILE: &str = "psirt_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    // All .proto files, as names relative to the include root (the way
    // `import` statements name them), sorted for a reproducible output.
    let mut files = Vec::new();
    collect_protos(&proto_root, &proto_root, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files under {}", proto_root.display()).into());
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler
        // Keep comments: reflection clients and `psirtctl` show them.
        .include_source_info(true)
        // Keep google/protobuf/*.proto so the set is self-contained.
        .include_imports(true)
        .open_files(&files)?;

    fs::write(out_dir.join(DESCRIPTOR_FILE), compiler.encode_file_descriptor_set())?;

    let mut config = tonic_prost_build::Config::new();
    // Every message implements `prost::Name` (`full_name()`, `type_url()`):
    // the event type in the NATS envelope is the fully-qualified name.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;

    Ok(())
}

/// Appends the paths (relative to `root`, with `/` separators) of all `.proto`
/// files below `dir` to `out`.
fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            let relative = path.strip_prefix(root)?;
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push(name);
        }
    }
    Ok(())
}
