//! A lead list as an Indian operator's CRM exports it: a name, an E.164 mobile number and four
//! attribute columns (city, state, product interest, lead source), every number distinct.

use std::io::{self, BufWriter, Write};
use std::path::Path;

const FIRST: &[&str] = &[
    "Aarav", "Vivaan", "Aditya", "Priya", "Ananya", "Diya", "Rohan", "Kavya", "Arjun", "Isha",
    "Sai", "Meera", "Rahul", "Sneha", "Vikram", "Pooja", "Karan", "Neha", "Amit", "Lakshmi",
];
const LAST: &[&str] = &[
    "Sharma", "Verma", "Iyer", "Reddy", "Nair", "Patel", "Gupta", "Singh", "Kumar", "Das", "Menon",
    "Joshi", "Rao", "Chopra", "Mehta", "Banerjee",
];
const PLACES: &[(&str, &str)] = &[
    ("Mumbai", "Maharashtra"),
    ("Pune", "Maharashtra"),
    ("Bengaluru", "Karnataka"),
    ("Chennai", "Tamil Nadu"),
    ("Hyderabad", "Telangana"),
    ("New Delhi", "Delhi"),
    ("Kolkata", "West Bengal"),
    ("Ahmedabad", "Gujarat"),
    ("Jaipur", "Rajasthan"),
    ("Kochi", "Kerala"),
];
const PRODUCTS: &[&str] = &[
    "home loan",
    "car loan",
    "credit card",
    "health insurance",
    "SIP",
];
const SOURCES: &[&str] = &["website", "facebook ad", "walk-in", "referral", "google ad"];

/// The `i`-th distinct Indian mobile number, `+91` and ten digits starting 6–9.
///
/// `i * 618,033,989 mod 10⁹` is a bijection on 0..10⁹ (the multiplier is prime to 10⁹), so
/// numbers never repeat. Consecutive rows land about 0.618 of the range apart (the golden ratio),
/// so the list is in no useful order, as a real CRM export is: the unique index on the number
/// sees keys at random positions. (The earlier small multiplier made rows nearly sorted, which
/// flattered the import: SQLite inserted them about 1.8 times as fast as a shuffled list.)
pub fn mobile(i: u64) -> String {
    let first = 6 + i % 4;
    let rest = (i.wrapping_mul(618_033_989).wrapping_add(104_729)) % 1_000_000_000;
    format!("+91{first}{rest:09}")
}

/// Writes a CSV of `rows` leads to `path`; returns its size in bytes.
pub fn write(path: &Path, rows: u64) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"Name,Phone,City,State,Product Interest,Lead Source\r\n")?;
    for i in 0..rows {
        let (city, state) = PLACES[(i / 7 % PLACES.len() as u64) as usize];
        writeln!(
            out,
            "{} {},{},{},{},{},{}\r",
            FIRST[(i % FIRST.len() as u64) as usize],
            LAST[(i / 3 % LAST.len() as u64) as usize],
            mobile(i),
            city,
            state,
            PRODUCTS[(i / 11 % PRODUCTS.len() as u64) as usize],
            SOURCES[(i / 13 % SOURCES.len() as u64) as usize],
        )?;
    }
    out.flush()?;
    Ok(out.get_ref().metadata()?.len())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::phone::E164;

    #[test]
    fn numbers_are_valid_distinct_e164_mobiles() {
        let numbers: HashSet<String> = (0..50_000).map(mobile).collect();
        assert_eq!(numbers.len(), 50_000);
        for n in numbers.iter().take(100) {
            assert_eq!(E164::parse(n).unwrap().as_str(), n);
        }
    }
}
