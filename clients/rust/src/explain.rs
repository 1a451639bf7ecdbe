//! The Decision as a table a person reads (`llm-pool query --explain`).

use crate::pb;

/// The Decision as a table a person reads: strategy and winner, then one row per candidate
/// (status, latency, endpoint, group, vote weight, answer or error), the groups with their
/// votes, the judge's verdict and the cascade's tiers.
pub fn explain(answer: &pb::Answer) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let Some(d) = &answer.decision else {
        return "no decision (a cache hit or a join carries the original's)\n".to_owned();
    };
    let strategy = pb::Strategy::try_from(d.strategy)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("STRATEGY_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| d.strategy.to_string());
    let _ = writeln!(
        out,
        "strategy {strategy}  winner {}  agreement {:.2}  latency {} ms{}",
        if d.winner.is_empty() { "-" } else { &d.winner },
        d.agreement,
        answer.latency_ms,
        if answer.cache_hit {
            "  (cache hit)"
        } else {
            ""
        }
    );
    if let Some(c) = d.confidence {
        let _ = writeln!(
            out,
            "confidence {c:.3}  calls {}{}",
            d.candidates.len(),
            if d.stopped.is_empty() {
                String::new()
            } else {
                format!("  stopped: {}", d.stopped)
            }
        );
    }
    if !d.degraded.is_empty() {
        let _ = writeln!(out, "degraded  {}", d.degraded.join(", "));
    }
    if !d.formula.is_empty() {
        let _ = writeln!(out, "formula  {}", d.formula);
    }
    let _ = writeln!(
        out,
        "{:<3} {:<16} {:<9} {:>8} {:<14} {:>5} {:>7} {:>8}  answer / error",
        "#", "provider", "status", "ms", "endpoint", "group", "weight", "accuracy"
    );
    for (i, c) in d.candidates.iter().enumerate() {
        let text = if c.error.is_empty() {
            &c.text
        } else {
            &c.error
        };
        let text: String = text.replace('\n', " ").chars().take(60).collect();
        let _ = writeln!(
            out,
            "{:<3} {:<16} {:<9} {:>8} {:<14} {:>5} {:>7} {:>8}  {}{}",
            i,
            format!("{}{}", c.provider, if c.hedged { " (hedge)" } else { "" }),
            c.status,
            c.latency_ms,
            c.endpoint,
            c.group.map_or("-".to_owned(), |g| g.to_string()),
            c.weight.map_or("-".to_owned(), |w| format!("{w:.2}")),
            c.accuracy.map_or("-".to_owned(), |a| format!("{a:.3}")),
            text,
            if c.sample > 0 {
                format!("  (sample {})", c.sample)
            } else {
                String::new()
            }
        );
    }
    for (i, g) in d.groups.iter().enumerate() {
        let answer: String = g.answer.replace('\n', " ").chars().take(60).collect();
        let bar = "#".repeat((g.votes.max(0.0) * 4.0).round().min(40.0) as usize);
        let _ = writeln!(
            out,
            "group {i}: votes {:.2} {bar} members {:?}{}  {answer}",
            g.votes,
            g.members,
            g.probability
                .map_or(String::new(), |p| format!("  p {p:.3}"))
        );
    }
    if let Some(j) = &d.judge {
        let _ = writeln!(
            out,
            "judge {}: winner {}  attempts {}  scores {:?}{}",
            j.provider,
            j.winner.map_or("-".to_owned(), |w| w.to_string()),
            j.attempts,
            j.scores,
            if j.errors.is_empty() {
                String::new()
            } else {
                format!("  errors {:?}", j.errors)
            }
        );
    }
    if !d.rationale.is_empty() {
        let _ = writeln!(out, "rationale  {}", d.rationale);
    }
    for t in &d.tiers {
        let _ = writeln!(
            out,
            "tier {} ({}/1k): {}  {}",
            t.provider,
            t.cost_per_1k_tokens,
            if t.accepted { "accepted" } else { "passed on" },
            t.reason
        );
    }
    if !d.fallbacks.is_empty() {
        let _ = writeln!(out, "fallbacks  {}", d.fallbacks.join(", "));
    }
    out
}
