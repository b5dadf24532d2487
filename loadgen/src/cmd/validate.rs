//! `loadgen validate`: every problem of every file, with file, line and column; the predicted
//! alerts' contradictions as warnings.

use crate::cmd::exit::EXIT_PASS;

pub fn validate(files: &[std::path::PathBuf]) -> u8 {
    let mut code = EXIT_PASS;
    for f in files {
        match crate::cmd::load(f) {
            Ok(s) => {
                println!(
                    "{}: ok ({} phases, {})",
                    f.display(),
                    s.phases.len(),
                    target_app::duration::format(s.duration())
                );
                crate::cmd::predict::validate_warnings(f, &s);
            }
            Err(bad) => code = bad,
        }
    }
    code
}
