//! 16-bit mono PCM from the speech server's rate to the call's (OpenAI's `pcm` is 24 kHz; the
//! call runs at 8 or 16 kHz), with rubato's FFT resampler and its anti-aliasing filter.
//!
//! A turn's audio goes through as one stream: [`Resampler::push`] as bytes arrive (any split,
//! an odd byte is carried), [`Resampler::finish`] at its end flushes what the filter still holds,
//! so the turn comes out whole and in step: the filter's delay is dropped at the start and
//! exactly `len × to / from` samples come out in all. Nothing allocates per push once the
//! buffers have grown to a chunk.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Input frames per FFT chunk at the server's rate (20 ms at 24 kHz).
const CHUNK_MS: usize = 20;

pub struct Resampler {
    /// `None` when the rates are equal: the audio passes through.
    fft: Option<Fft<f32>>,
    from: u32,
    to: u32,
    /// Samples waiting for a whole chunk.
    input: Vec<f32>,
    output: Vec<f32>,
    /// A split sample from the last push.
    odd: Option<u8>,
    /// Output frames still to drop (the filter's delay), and the frames in and out so far.
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resampler({} Hz → {} Hz)", self.from, self.to)
    }
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, String> {
        let fft = if from == to {
            None
        } else {
            let chunk = from as usize * CHUNK_MS / 1000;
            let fft = Fft::new(from as usize, to as usize, chunk, 1, FixedSync::Both)
                .map_err(|e| format!("cannot resample {from} Hz to {to} Hz: {e}"))?;
            Some(fft)
        };
        let mut r = Self {
            fft,
            from,
            to,
            input: Vec::new(),
            output: Vec::new(),
            odd: None,
            skip: 0,
            frames_in: 0,
            frames_out: 0,
        };
        r.reset();
        Ok(r)
    }

    /// Ready for a new stream (a new turn).
    pub fn reset(&mut self) {
        self.input.clear();
        self.odd = None;
        self.frames_in = 0;
        self.frames_out = 0;
        if let Some(fft) = self.fft.as_mut() {
            fft.reset();
            self.skip = fft.output_delay();
            self.output.resize(fft.output_frames_max(), 0.0);
        }
    }

    /// Appends the stream's next bytes; returns the resampled bytes ready so far.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        if let Some(first) = self.odd.take() {
            match rest.split_first() {
                Some((second, tail)) => {
                    self.take_sample(i16::from_le_bytes([first, *second]), out);
                    rest = tail;
                }
                None => {
                    self.odd = Some(first);
                    return;
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        for pair in pairs.by_ref() {
            self.take_sample(i16::from_le_bytes([pair[0], pair[1]]), out);
        }
        if let [last] = pairs.remainder() {
            self.odd = Some(*last);
        }
        self.run(out, false);
    }

    /// The end of the stream: what the filter still holds comes out.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.run(out, true);
        self.reset();
    }

    fn take_sample(&mut self, sample: i16, out: &mut Vec<u8>) {
        self.frames_in += 1;
        match self.fft {
            None => out.extend_from_slice(&sample.to_le_bytes()),
            Some(_) => self.input.push(sample as f32 / 32_768.0),
        }
    }

    /// Processes every whole chunk; at the end, pads with silence until everything that went
    /// in has come out.
    fn run(&mut self, out: &mut Vec<u8>, end: bool) {
        let Some(fft) = self.fft.as_mut() else {
            return;
        };
        let chunk = fft.input_frames_next();
        let wanted = (self.frames_in * self.to as u64).div_ceil(self.from as u64);
        loop {
            if self.input.len() < chunk {
                if !end || self.frames_out >= wanted {
                    break;
                }
                self.input.resize(chunk, 0.0);
            }
            let frames_out = fft.output_frames_next();
            let (Ok(input), Ok(mut output)) = (
                InterleavedSlice::new(&self.input[..chunk], 1, chunk),
                InterleavedSlice::new_mut(&mut self.output[..frames_out], 1, frames_out),
            ) else {
                break;
            };
            let Ok((_, written)) = fft.process_into_buffer(&input, &mut output, None) else {
                break;
            };
            self.input.drain(..chunk);
            for &s in &self.output[..written] {
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                if end && self.frames_out >= wanted {
                    break;
                }
                let sample = (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
                out.extend_from_slice(&sample.to_le_bytes());
                self.frames_out += 1;
            }
        }
        if end {
            self.input.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    fn sine(rate: u32, hz: f32, secs: f32) -> Vec<u8> {
        (0..(rate as f32 * secs) as usize)
            .flat_map(|i| {
                let t = i as f32 / rate as f32;
                ((10_000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn a_tone_keeps_its_pitch_level_and_length() {
        let mut r = Resampler::new(24_000, 8_000).unwrap();
        let input = sine(24_000, 1_000.0, 0.5);
        let mut out = Vec::new();
        // In odd pieces, as HTTP delivers them.
        for piece in input.chunks(333) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        let s = samples(&out);
        assert_eq!(s.len(), 4_000, "half a second at 8 kHz");
        // 1 kHz: 1,000 rising zero crossings a second, away from the edges.
        let middle = &s[400..3_600];
        let rising = middle.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!((398..=402).contains(&rising), "{rising} crossings in 0.4 s");
        let peak = middle.iter().map(|x| x.unsigned_abs()).max().unwrap();
        assert!((9_500..=10_500).contains(&peak), "level kept: {peak}");
    }

    #[test]
    fn equal_rates_pass_through_untouched() {
        let mut r = Resampler::new(8_000, 8_000).unwrap();
        let input = sine(8_000, 400.0, 0.1);
        let mut out = Vec::new();
        r.push(&input[..3], &mut out);
        r.push(&input[3..], &mut out);
        r.finish(&mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn emulated_speech_at_24_khz_is_understood_at_8_khz() {
        use crate::emulators::speech;
        let text = "Namaste, this is Asha. क्या आपके पास एक मिनट है?";
        let input = speech::to_bytes(&speech::synthesize(text, 24_000));
        let mut r = Resampler::new(24_000, 8_000).unwrap();
        let mut out = Vec::new();
        for piece in input.chunks(4_801) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out.len() * 3, input.len(), "exactly a third of the samples");
        assert_eq!(speech::transcribe(&speech::from_bytes(&out)), text);
    }
}
