//! Asking for a password on the controlling terminal with echo off.
//!
//! `/dev/tty` rather than stdin and stdout, so the prompt never lands in
//! redirected output and the password never comes from a pipe by accident;
//! piped passwords go through `--password-stdin`, where the choice is explicit.

use nix::sys::termios::{LocalFlags, SetArg, Termios, tcgetattr, tcsetattr};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};

/// More than any password bcrypt can use; stops a pipe of unbounded input
/// from being read into memory whole.
const MAX_LINE_BYTES: u64 = 4096;

/// The controlling terminal with echo off until this is dropped, which
/// restores the settings it found on every path out, errors included.
pub struct HiddenInput {
    tty: BufReader<File>,
    saved: Termios,
}

impl HiddenInput {
    pub fn open() -> io::Result<HiddenInput> {
        let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
        let saved = tcgetattr(&tty)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        // The Enter key still moves to a new line, so the next prompt or
        // message does not run on after this one.
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet)?;
        Ok(HiddenInput {
            tty: BufReader::new(tty),
            saved,
        })
    }

    pub fn ask(&mut self, prompt: &str) -> io::Result<String> {
        let out = self.tty.get_mut();
        out.write_all(prompt.as_bytes())?;
        out.flush()?;
        first_line(&mut self.tty)
    }
}

impl Drop for HiddenInput {
    fn drop(&mut self) {
        let _ = tcsetattr(self.tty.get_ref(), SetArg::TCSANOW, &self.saved);
    }
}

/// The first line of `input` without its `\n` or `\r\n`. Input that ends
/// before any character is an error, not an empty password.
pub fn first_line(input: impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let read = input.take(MAX_LINE_BYTES).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "no input, expected a line with the password",
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    String::from_utf8(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the password is not UTF-8"))
}
