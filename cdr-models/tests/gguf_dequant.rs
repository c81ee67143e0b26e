//! Dequantization of every supported ggml type against gguf-py's reference decoding
//! (`tests/fixtures/gguf/dequant.json`, written by `tools/make_gguf_fixtures.py`).

mod gguf_common;

use std::collections::BTreeSet;

use cdr_models::gguf::{DequantError, GgmlType, SUPPORTED_TYPES, dequantize, is_supported};
use gguf_common::{Rng, gguf_fixture, hex};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    gguf_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "type")]
    ty: String,
    type_id: u32,
    n_elements: usize,
    source: String,
    data_hex: String,
    expected_hex: String,
}

fn fixture() -> Fixture {
    let path = gguf_fixture("dequant.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/make_gguf_fixtures.py)", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_supported_type_matches_gguf_py_bit_for_bit() {
    let fixture = fixture();
    let mut covered = BTreeSet::new();
    for case in &fixture.cases {
        let ty = GgmlType::from_id(case.type_id);
        assert_eq!(ty.to_string(), case.ty, "type id {}", case.type_id);
        let data = hex(&case.data_hex);
        let expected: Vec<f32> = hex(&case.expected_hex)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(expected.len(), case.n_elements);
        let mut got = vec![f32::NAN; case.n_elements];
        dequantize(ty, &data, &mut got).unwrap_or_else(|e| panic!("{}: {e}", case.ty));
        let mut exact = 0;
        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            let rel = (g - e).abs() / e.abs().max(f32::MIN_POSITIVE);
            assert!(
                g.to_bits() == e.to_bits() || rel <= 1e-6,
                "{} element {i}: got {g:e}, gguf-py {e:e}",
                case.ty
            );
            exact += usize::from(g.to_bits() == e.to_bits());
        }
        println!(
            "{:5} ({:8}): {exact}/{} values bit-identical to gguf {}",
            case.ty, case.source, case.n_elements, fixture.gguf_version
        );
        assert_eq!(exact, case.n_elements, "{}: not bit-identical", case.ty);
        covered.insert(case.ty.clone());
    }
    let supported: BTreeSet<String> = SUPPORTED_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        covered, supported,
        "the fixture must cover every supported type"
    );
}

#[test]
fn wrong_sizes_and_unsupported_types_are_errors() {
    let mut out = vec![0f32; 64];
    // Two Q8_0 blocks are 68 bytes.
    let err = dequantize(GgmlType::Q8_0, &[0u8; 67], &mut out).unwrap_err();
    assert_eq!(
        err,
        DequantError::SizeMismatch {
            ty: GgmlType::Q8_0,
            n_elements: 64,
            expected: 68,
            actual: 67
        }
    );
    assert!(err.to_string().contains("68"), "{err}");
    assert!(dequantize(GgmlType::Q8_0, &[0u8; 69], &mut out).is_err());
    assert!(dequantize(GgmlType::Q8_0, &[0u8; 68], &mut out).is_ok());

    let mut odd = vec![0f32; 40];
    assert!(matches!(
        dequantize(GgmlType::Q4_0, &[0u8; 18], &mut odd),
        Err(DequantError::PartialBlock { block: 32, .. })
    ));
    let mut k = vec![0f32; 128];
    assert!(matches!(
        dequantize(GgmlType::Q4_K, &[0u8; 72], &mut k),
        Err(DequantError::PartialBlock { block: 256, .. })
    ));

    for ty in [
        GgmlType::Q8_1,
        GgmlType::Q8_K,
        GgmlType::IQ2_XXS,
        GgmlType::IQ4_NL,
        GgmlType::I32,
        GgmlType::F64,
        GgmlType::Unknown(99),
    ] {
        assert!(!is_supported(ty));
        let err = dequantize(ty, &[], &mut []).unwrap_err();
        assert_eq!(err, DequantError::Unsupported(ty));
        assert!(err.to_string().contains(&ty.to_string()), "{err}");
    }
    // An empty buffer of a supported type is fine.
    assert!(dequantize(GgmlType::Q6_K, &[], &mut []).is_ok());
}

#[test]
fn type_ids_round_trip() {
    for id in 0..64 {
        let ty = GgmlType::from_id(id);
        assert_eq!(ty.id(), id);
        if let Some((block, size)) = ty.block_layout() {
            assert!(block > 0 && size > 0);
            assert_eq!(ty.byte_len(block as u64 * 3), Some(size as u64 * 3));
            if block > 1 {
                assert_eq!(ty.byte_len(block as u64 + 1), None);
            }
        }
    }
    assert_eq!(GgmlType::from_id(12), GgmlType::Q4_K);
    assert_eq!(GgmlType::Q4_K.to_string(), "Q4_K");
    assert_eq!(GgmlType::Unknown(77).to_string(), "ggml type 77");
    assert_eq!(GgmlType::F32.byte_len(u64::MAX), None);
    assert_eq!(GgmlType::Q8_0.byte_len(u64::MAX / 32 * 32), None);
}

/// Random blocks of `ty` with finite f16 scales at the given byte offsets.
fn random_blocks(ty: GgmlType, blocks: usize, scale_offsets: &[usize]) -> Vec<u8> {
    let (_, size) = ty.block_layout().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut data = rng.bytes(blocks * size);
    for block in data.chunks_exact_mut(size) {
        for &off in scale_offsets {
            // 0x2000..0x3bff: f16 in [2^-7, 1).
            let h = 0x2000u16 + (rng.next_u64() % 0x1bff) as u16;
            block[off..off + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    data
}

/// Dequantization throughput; run with
/// `cargo test --release -p cdr-models --test gguf_dequant -- --ignored --nocapture`.
#[test]
#[ignore = "throughput measurement"]
fn dequant_throughput() {
    let cases: [(GgmlType, &[usize]); 7] = [
        (GgmlType::Q4_0, &[0]),
        (GgmlType::Q4_1, &[0, 2]),
        (GgmlType::Q8_0, &[0]),
        (GgmlType::Q4_K, &[0, 2]),
        (GgmlType::Q5_K, &[0, 2]),
        (GgmlType::Q6_K, &[208]),
        (GgmlType::F16, &[]),
    ];
    for (ty, offsets) in cases {
        let (block, size) = ty.block_layout().unwrap();
        // 32 Mi elements per run (128 MiB of f32 output).
        let blocks = (32 << 20) / block;
        let data = if ty == GgmlType::F16 {
            (0..blocks)
                .flat_map(|i| (0x3c00u16 + (i % 1024) as u16).to_le_bytes())
                .collect()
        } else {
            random_blocks(ty, blocks, offsets)
        };
        let mut out = vec![0f32; blocks * block];
        dequantize(ty, &data, &mut out).unwrap();
        let runs = 5;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            dequantize(ty, &data, &mut out).unwrap();
        }
        let secs = start.elapsed().as_secs_f64() / runs as f64;
        let checksum: f64 = out.iter().step_by(4099).map(|&v| v as f64).sum();
        println!(
            "{ty:5}: {:7.0} MB/s quantized input, {:7.0} MB/s f32 output, {:6.0} M elements/s (checksum {checksum:.3e})",
            (blocks * size) as f64 / secs / 1e6,
            (blocks * block * 4) as f64 / secs / 1e6,
            (blocks * block) as f64 / secs / 1e6,
        );
    }
}
