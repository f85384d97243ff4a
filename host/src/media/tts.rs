//! Text-to-speech behind a small trait, with espeak-ng (run as a process) as the engine: it is
//! packaged by every Linux distribution, needs no model download, is deterministic (so its output
//! caches well) and speaks a hundred languages.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::MediaError;

/// Speech as a `<Say>` asks for it.
#[derive(Debug, Clone)]
pub struct Speech {
    pub text: String,
    /// The reference platform's voice names (`man`, `woman`, `alice`, `Polly.*`, ...).
    pub voice: Option<String>,
    /// A BCP 47 tag such as `en-US`.
    pub language: Option<String>,
}

/// A text-to-speech engine: writes `speech` as an audio file (any format the transcoder reads) to
/// `out`.
pub trait SpeechEngine: Send + Sync {
    /// Part of the cache key: two engines never share cached speech.
    fn name(&self) -> &str;

    /// The engine's own voice for a request, or why it has none. Requests that map to the same
    /// voice sound the same, so they share a cache entry.
    fn voice(&self, speech: &Speech) -> Result<String, MediaError>;

    fn synthesize<'a>(
        &'a self,
        text: &'a str,
        voice: &'a str,
        out: &'a Path,
    ) -> BoxFuture<'a, Result<(), MediaError>>;
}

/// espeak-ng, run once per synthesis with the text on stdin (never on the command line, where
/// text starting with `-` would read as an option).
pub struct Espeak {
    command: String,
    /// The languages the installed espeak-ng speaks (lowercase).
    languages: Vec<String>,
    timeout: Duration,
}

impl Espeak {
    /// Finds espeak-ng by running `command --voices`; `None` when it is not installed.
    pub fn detect(command: &str, timeout: Duration) -> Option<Espeak> {
        let output = std::process::Command::new(command)
            .arg("--voices")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success())?;
        let languages: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .filter_map(|line| line.split_whitespace().nth(1))
            .map(str::to_ascii_lowercase)
            .collect();
        (!languages.is_empty()).then(|| Espeak {
            command: command.to_string(),
            languages,
            timeout,
        })
    }

    /// `en-US` → `en-us`; a language espeak-ng only knows without its region (`de-DE` → `de`)
    /// falls back to the bare language.
    fn language(&self, requested: Option<&str>) -> Result<String, MediaError> {
        let requested = requested.unwrap_or("en-US").trim().to_ascii_lowercase();
        let requested = requested.replace('_', "-");
        if self.languages.contains(&requested) {
            return Ok(requested);
        }
        let primary = requested.split('-').next().unwrap_or_default();
        let fallback = [
            primary.to_string(),
            format!("{primary}-{primary}"),
            format!("{primary}-us"),
        ];
        fallback
            .into_iter()
            .find(|candidate| self.languages.contains(candidate))
            .ok_or_else(|| {
                MediaError::speech(format!(
                    "espeak-ng does not speak the language {requested:?}; use a tag such as en-US, en-GB, fr-FR, de-DE or es-ES"
                ))
            })
    }
}

impl SpeechEngine for Espeak {
    fn name(&self) -> &str {
        "espeak-ng"
    }

    fn voice(&self, speech: &Speech) -> Result<String, MediaError> {
        let language = self.language(speech.language.as_deref())?;
        // The reference platform's basic voices map onto espeak-ng's male and female variants;
        // other names (neural voices this host does not have) use the language's default voice.
        let variant = match speech.voice.as_deref().map(str::to_ascii_lowercase) {
            Some(voice) if voice == "man" => "+m3",
            Some(voice) if voice == "woman" || voice == "alice" => "+f3",
            _ => "",
        };
        Ok(format!("{language}{variant}"))
    }

    fn synthesize<'a>(
        &'a self,
        text: &'a str,
        voice: &'a str,
        out: &'a Path,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            let mut child = tokio::process::Command::new(&self.command)
                .args(["--stdin", "-v", voice, "-w"])
                .arg(out)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|error| {
                    MediaError::no_speech(format!("espeak-ng could not be started: {error}"))
                })?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(text.as_bytes())
                    .await
                    .map_err(MediaError::internal)?;
            }
            let output = tokio::time::timeout(self.timeout, child.wait_with_output())
                .await
                .map_err(|_| {
                    MediaError::speech(format!(
                        "espeak-ng took longer than {} ms; say less at once",
                        self.timeout.as_millis()
                    ))
                })?
                .map_err(MediaError::internal)?;
            if !output.status.success() {
                return Err(MediaError::speech(format!(
                    "espeak-ng failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            Ok(())
        })
    }
}
