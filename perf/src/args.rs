//! Command-line flags shared by the load tool's modes: `--flag value` pairs and the
//! number checks every mode makes.

/// The `--flag value` pairs of `argv`; `-h`/`--help` is an `Err` with an empty message
/// (the caller prints the usage), a flag without a value an `Err` naming it.
pub fn pairs(argv: &[String]) -> impl Iterator<Item = Result<(&str, &str), String>> + '_ {
    let mut it = argv.iter();
    std::iter::from_fn(move || {
        let flag = it.next()?;
        if flag == "-h" || flag == "--help" {
            return Some(Err(String::new()));
        }
        Some(match it.next() {
            Some(v) => Ok((flag.as_str(), v.as_str())),
            None => Err(format!("{flag} needs a value")),
        })
    })
}

/// A finite, non-negative number.
pub fn num(flag: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{flag}: not a non-negative number: {v:?}")),
    }
}

/// A count.
pub fn count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| format!("{flag}: not a count: {v:?}"))
}
