//! How the simulator reads an entrypoint: as a tiny script it can play
//! against its clock instead of running it.
//!
//! The entrypoint is split into commands on `;`, `&&` and newlines (outside
//! quotes); each command is split into words as a shell would. Commands:
//!
//! | command                   | effect                                              |
//! |---------------------------|-----------------------------------------------------|
//! | `sleep <secs>`            | runs that long (`1.5`, `90s`, `2m`, `1h`)           |
//! | `echo <text>`             | writes the text and a newline to the log            |
//! | `printf <format> <args>`  | writes the format with `%s`/`%d` filled, `\n` read  |
//! | `exit <code>`             | ends the job now: 0 succeeds, anything else fails   |
//! | `fail-after <secs> <code>`| runs that long, then ends with that code            |
//! | anything else             | runs for the configured default duration            |
//!
//! A script that reaches its end succeeds. So `sleep 30` runs 30 s and
//! succeeds, `exit 3` fails at once with code 3, and the conformance suite's
//! `printf 'conformance-%s\n' first; sleep 5; printf 'conformance-%s\n' second`
//! logs one line, five seconds later another, and succeeds.

use std::time::Duration;

/// What an entrypoint does once started, relative to its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Log text and when it is written, in ms after the start, in order.
    pub output: Vec<(u64, String)>,
    /// How long it runs, in ms.
    pub duration_ms: u64,
    /// How it ends: 0 succeeds, anything else fails.
    pub exit_code: i32,
}

/// Reads `entrypoint`; commands the simulator does not know run for
/// `default_duration`.
pub fn interpret(entrypoint: &str, default_duration: Duration) -> Program {
    let default_ms = millis(default_duration);
    let mut program = Program {
        output: Vec::new(),
        duration_ms: 0,
        exit_code: 0,
    };
    for command in split_commands(entrypoint) {
        let words = shlex::split(&command).unwrap_or_else(|| vec![command.clone()]);
        let Some((name, args)) = words.split_first() else {
            continue;
        };
        let at = program.duration_ms;
        match (name.as_str(), args) {
            ("sleep", [secs]) if seconds(secs).is_some() => {
                program.duration_ms = at.saturating_add(seconds(secs).unwrap_or_default());
            }
            ("echo", words) => program.output.push((at, format!("{}\n", words.join(" ")))),
            ("printf", [format, args @ ..]) => program.output.push((at, printf(format, args))),
            ("exit", []) => return program,
            ("exit", [code]) if code.parse::<i32>().is_ok() => {
                program.exit_code = code.parse().unwrap_or(1);
                return program;
            }
            ("fail-after", [secs, code])
                if seconds(secs).is_some() && code.parse::<i32>().is_ok() =>
            {
                program.duration_ms = at.saturating_add(seconds(secs).unwrap_or_default());
                program.exit_code = code.parse().unwrap_or(1);
                return program;
            }
            _ => {
                program.output.push((
                    at,
                    format!(
                        "[sim] running `{command}` for {}\n",
                        humantime_ms(default_ms)
                    ),
                ));
                program.duration_ms = at.saturating_add(default_ms);
            }
        }
    }
    program
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn humantime_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// `1.5` or `90s`, `2m`, `1h` as ms.
fn seconds(text: &str) -> Option<u64> {
    let (number, scale) = match text.as_bytes().last()? {
        b's' => (&text[..text.len() - 1], 1.0),
        b'm' => (&text[..text.len() - 1], 60.0),
        b'h' => (&text[..text.len() - 1], 3600.0),
        _ => (text, 1.0),
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * scale * 1000.0).round() as u64)
}

/// Splits on `;`, `&&` and newlines outside quotes.
fn split_commands(script: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (_, '\\') => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (None, ';' | '\n') => commands.push(std::mem::take(&mut current)),
            (None, '&') if chars.peek() == Some(&'&') => {
                chars.next();
                commands.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    commands.push(current);
    commands
        .into_iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// A shell's `printf` for `%s`, `%d`, `%%` and the escapes `\n`, `\t`, `\\`;
/// the format repeats while arguments are left, as in a shell.
fn printf(format: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut next = 0;
    loop {
        let mut used = false;
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('s' | 'd') => {
                        used = true;
                        out.push_str(args.get(next).map(String::as_str).unwrap_or(""));
                        next += 1;
                    }
                    Some(other) => {
                        if other != '%' {
                            out.push('%');
                        }
                        out.push(other);
                    }
                    None => out.push('%'),
                },
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        if !used || next >= args.len() {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Duration = Duration::from_secs(60);

    #[test]
    fn sleep_runs_then_succeeds() {
        let program = interpret("sleep 2.5", DEFAULT);
        assert_eq!(program.duration_ms, 2_500);
        assert_eq!(program.exit_code, 0);
        assert!(program.output.is_empty());
        assert_eq!(interpret("sleep 2m", DEFAULT).duration_ms, 120_000);
    }

    #[test]
    fn exit_and_fail_after_end_the_script() {
        let program = interpret("exit 3", DEFAULT);
        assert_eq!((program.duration_ms, program.exit_code), (0, 3));
        let program = interpret("fail-after 4 7; echo never", DEFAULT);
        assert_eq!((program.duration_ms, program.exit_code), (4_000, 7));
        assert!(program.output.is_empty());
        assert_eq!(interpret("exit 0", DEFAULT).exit_code, 0);
    }

    #[test]
    fn echo_logs_at_its_time() {
        let program = interpret("echo 'hello  world'; sleep 1 && echo done", DEFAULT);
        assert_eq!(
            program.output,
            vec![
                (0, "hello  world\n".to_string()),
                (1_000, "done\n".to_string())
            ]
        );
        assert_eq!((program.duration_ms, program.exit_code), (1_000, 0));
    }

    #[test]
    fn conformance_logs_twice_is_understood() {
        let program = interpret(
            "printf 'conformance-%s\\n' first; sleep 5; printf 'conformance-%s\\n' second",
            DEFAULT,
        );
        assert_eq!(
            program.output,
            vec![
                (0, "conformance-first\n".to_string()),
                (5_000, "conformance-second\n".to_string())
            ]
        );
        assert_eq!(program.duration_ms, 5_000);
    }

    #[test]
    fn unknown_commands_run_for_the_default() {
        let program = interpret("python train.py --task 'a;b'", DEFAULT);
        assert_eq!(program.duration_ms, 60_000);
        assert_eq!(program.exit_code, 0);
        assert!(program.output[0].1.contains("python train.py --task 'a;b'"));
        assert_eq!(interpret("sleep forever", DEFAULT).duration_ms, 60_000);
    }

    #[test]
    fn printf_repeats_its_format_and_reads_escapes() {
        assert_eq!(
            printf("%s-%s\\n", &["a".into(), "b".into(), "c".into()]),
            "a-b\nc-\n"
        );
        assert_eq!(printf("100%%\\t%d", &["5".into()]), "100%\t5");
    }
}
