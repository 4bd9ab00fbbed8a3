//! 16-bit little-endian PCM helpers shared by the call loop and the STT replay buffer.
//!
//! Every caller frame is scanned twice (is anyone speaking? is it silence the replay buffer
//! can keep as a length?). Both read the frame's peak, computed without an early exit: a loop
//! that stops at the first loud sample cannot be vectorised, and on silence (most of a call) it
//! reads every sample anyway. 100 ms at 8 kHz: about 60 ns against 700 ns for the two
//! short-circuiting scans it replaced (callgrind put them at a tenth of the service's
//! instructions in the bench).

/// The largest absolute sample value; a trailing odd byte is ignored.
pub fn peak(pcm: &[u8]) -> u16 {
    pcm.chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
        .fold(0, u16::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn the_peak_is_the_largest_absolute_sample_wherever_it_is() {
        assert_eq!(peak(&[]), 0);
        assert_eq!(peak(&samples(&[0, 3, -7, 2])), 7);
        assert_eq!(peak(&samples(&[i16::MIN, 0])), 32768);
        let mut long = vec![5i16; 799];
        long.push(-900);
        assert_eq!(peak(&samples(&long)), 900, "the last sample counts");
        let mut odd = samples(&[10, 20]);
        odd.push(0xff);
        assert_eq!(peak(&odd), 20, "a trailing odd byte is no sample");
    }
}
