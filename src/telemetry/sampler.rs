//! Which traces are kept: the standard `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` choices. Slow operations are kept whatever this
//! says (see `delivery` and `request`).

use super::ids::TraceId;

#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// Keeps this fraction of traces, decided by the trace id alone, so every
    /// instance decides the same for one trace.
    Ratio(f64),
    /// Follows the caller's decision when there is one; otherwise the root rule.
    ParentBased(Box<Sampler>),
}

impl Sampler {
    /// The spec's names; the default is `parentbased_always_on`.
    /// Errors name the variable at fault: (variable, problem).
    pub fn from_env(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, (&'static str, String)> {
        let ratio = || -> Result<f64, (&'static str, String)> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| ("OTEL_TRACES_SAMPLER_ARG", "expected a ratio 0..=1".to_string())),
            }
        };
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("parentbased_always_on");
        Ok(match name {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::Ratio(ratio()?),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::Ratio(ratio()?))),
            other => {
                let _ = other;
                return Err((
                    "OTEL_TRACES_SAMPLER",
                    "expected always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio"
                        .to_string(),
                ));
            }
        })
    }

    /// `parent`: the caller's sampled flag, when the trace came from elsewhere.
    pub fn sampled(&self, trace: TraceId, parent: Option<bool>) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            // The lower 63 bits of a random id are uniform: compare them to
            // the ratio's share of that range.
            Sampler::Ratio(r) => ((trace.0 as u64) >> 1) < (r * (1u64 << 63) as f64) as u64,
            Sampler::ParentBased(root) => parent.unwrap_or_else(|| root.sampled(trace, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_name_the_variable() {
        assert_eq!(Sampler::from_env(None, None), Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))));
        assert_eq!(
            Sampler::from_env(Some("parentbased_traceidratio"), Some("0.1")),
            Ok(Sampler::ParentBased(Box::new(Sampler::Ratio(0.1))))
        );
        assert_eq!(Sampler::from_env(Some("sometimes"), None).map_err(|e| e.0), Err("OTEL_TRACES_SAMPLER"));
        assert_eq!(Sampler::from_env(Some("traceidratio"), Some("2")).map_err(|e| e.0), Err("OTEL_TRACES_SAMPLER_ARG"));
    }

    #[test]
    fn ratio_keeps_about_its_share_and_parents_decide() {
        let ten = Sampler::ParentBased(Box::new(Sampler::Ratio(0.1)));
        let kept = (0..20_000).filter(|_| ten.sampled(TraceId::random(), None)).count();
        assert!((1_600..2_400).contains(&kept), "{kept} of 20000 kept at 10 %");
        let t = TraceId::random();
        assert!(ten.sampled(t, Some(true)));
        assert!(!Sampler::ParentBased(Box::new(Sampler::AlwaysOn)).sampled(t, Some(false)));
        assert!(!Sampler::Ratio(0.0).sampled(TraceId(u128::MAX), None));
        assert!(Sampler::Ratio(1.0).sampled(TraceId(u128::MAX), None));
    }
}
