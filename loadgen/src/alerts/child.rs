//! The private Prometheus and Alertmanager as children that never outlive loadgen.
//!
//! Each runs in a process group of its own, so a Ctrl-C at the terminal reaches loadgen alone: loadgen
//! drains the run and still reads its alert evidence, then stops them itself (on drop, on every path
//! that returns). When loadgen dies without returning (a third Ctrl-C, SIGKILL, a crash) the kernel
//! kills them: they are started through util-linux's `setpriv --pdeathsig KILL`, which asks Linux for
//! `PR_SET_PDEATHSIG` before it becomes the program (no `unsafe` code in loadgen for it). Without
//! `setpriv` on the PATH they still get their own group, and only the last case is not covered.

use std::process::Command;

use crate::alerts::prometheus::on_path;

/// A command for `program` that runs in its own process group and dies with loadgen.
pub fn command(program: &str) -> Command {
    let mut command = if on_path("setpriv") {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--", program]);
        c
    } else {
        Command::new(program)
    };
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
}
