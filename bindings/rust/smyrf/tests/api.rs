//! Parameters, enumerations, configuration values, element conversions and the version.

use smyrf::{Backend, Bf16, Builder, Config, Dtype, F16, Layout, Mode, Param};

#[test]
fn parameters_carry_the_header_names() {
    assert_eq!(Param::ALL.len(), 36);
    for (i, param) in Param::ALL.iter().enumerate() {
        assert_eq!(param.code() as usize, i);
        let name = param.name();
        assert!(name.starts_with("SMYRF_PARAM_"), "{param:?}: {name}");
        // QkDim -> QK_DIM, OutStrideBatch -> OUT_STRIDE_BATCH.
        let mut spelled = String::new();
        for (j, c) in format!("{param:?}").chars().enumerate() {
            if c.is_uppercase() && j > 0 {
                spelled.push('_');
            }
            spelled.push(c.to_ascii_uppercase());
        }
        assert_eq!(name, format!("SMYRF_PARAM_{spelled}"));
        let (lower, upper) = param.bounds().unwrap();
        assert!(lower <= upper, "{name}");
    }
}

#[test]
fn enumerations_round_trip_through_the_config() {
    let mut config = Config::new().unwrap();
    for mode in [Mode::Smyrf, Mode::Dense, Mode::Hybrid] {
        config.set(Param::Mode, mode.value()).unwrap();
        assert_eq!(Mode::from_value(config.get(Param::Mode).unwrap()), Some(mode));
    }
    for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
        config.set(Param::Dtype, dtype.value()).unwrap();
        assert_eq!(Dtype::from_value(config.get(Param::Dtype).unwrap()), Some(dtype));
    }
    for backend in [Backend::Auto, Backend::Cpu, Backend::Cuda] {
        assert_eq!(Backend::from_value(backend.value()), Some(backend));
    }
    for layout in [Layout::Bhnd, Layout::Bnhd] {
        assert_eq!(Layout::from_value(layout.value()), Some(layout));
    }
    assert_eq!(Mode::from_value(99), None);
    assert_eq!(config.scale().unwrap(), 0.0);
    config.set_scale(0.25).unwrap();
    assert_eq!(config.scale().unwrap(), 0.25);
}

#[test]
fn the_builder_sets_every_value_and_plans_resolve_them() {
    let config = Builder::new()
        .q_len(100)
        .qk_dim(16)
        .seed(u64::MAX)
        .causal(true)
        .threads(1)
        .k_cluster_size(0)
        .device(0)
        .window(0)
        .summaries(0)
        .sinks(-1)
        .kmeans_iters(0)
        .scale(0.5)
        .build()
        .unwrap();
    assert_eq!(config.get(Param::Seed).unwrap(), -1, "the seed keeps its 64 bits");
    assert_eq!(config.get(Param::Causal).unwrap(), 1);
    assert_eq!(config.get(Param::Backend).unwrap(), Backend::Cpu.value());
    let plan = config.plan().unwrap();
    drop(config);
    assert_eq!(plan.get(Param::KLen).unwrap(), 100);
    assert_eq!(plan.get(Param::VDim).unwrap(), 16);
    assert_eq!(plan.scale().unwrap(), 0.5);
    assert_eq!(plan.backend_name(), "cpu");
    assert_eq!(plan.dtype(), Dtype::F32);
    let default_scale = Builder::new().q_len(4).qk_dim(16).plan().unwrap().scale().unwrap();
    assert_eq!(default_scale, 0.25);
}

#[test]
fn half_precision_conversions() {
    for (x, bits) in [
        (0.0f32, 0x0000u16),
        (-0.0, 0x8000),
        (1.0, 0x3c00),
        (-2.5, 0xc100),
        (65504.0, 0x7bff),
        (65520.0, 0x7c00), // rounds up to infinity
        (f32::INFINITY, 0x7c00),
        (5.960_464_5e-8, 0x0001), // the smallest subnormal
        (2.980_232_2e-8, 0x0000), // half of it: ties to even
        (6.097_555e-5, 0x03ff),   // the largest subnormal
        (1.000_976_6, 0x3c01),
        (1.000_488_3, 0x3c00), // a tie between 0x3c00 and 0x3c01: even
    ] {
        assert_eq!(F16::from_f32(x).0, bits, "{x}");
    }
    for bits in (0..=0xffffu16).filter(|b| b & 0x7c00 != 0x7c00 || b & 0x3ff == 0) {
        assert_eq!(F16::from_f32(F16(bits).to_f32()).0, bits, "{bits:#06x} round trip");
    }
    assert!(F16::from_f32(f32::NAN).to_f32().is_nan());

    assert_eq!(Bf16::from_f32(1.0).0, 0x3f80);
    assert_eq!(Bf16::from_f32(-3.0).0, 0xc040);
    assert_eq!(Bf16::from_f32(f32::from_bits(0x3f80_8000)).0, 0x3f80); // tie: even
    assert_eq!(Bf16::from_f32(f32::from_bits(0x3f81_8000)).0, 0x3f82); // tie: even
    assert_eq!(Bf16::from_f32(f32::from_bits(0x3f80_8001)).0, 0x3f81);
    assert!(Bf16::from_f32(f32::NAN).to_f32().is_nan());
    assert_eq!(Bf16(0x4049).to_f32(), f32::from_bits(0x4049_0000));
}

#[test]
fn the_library_has_the_header_version() {
    assert_eq!(smyrf::version_number(), smyrf_sys::SMYRF_VERSION_NUMBER);
}
