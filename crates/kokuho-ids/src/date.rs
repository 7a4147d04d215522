//! Dates and months, 西暦 (`YYYYMMDD`, `YYYYMM`) or 和暦 (`GYYMMDD`, `GYYMM`) with era bounds.

use std::fmt;

use time::Month as TMonth;

use crate::{IdError, ascii_digits};

/// A calendar date. Results are always written in 西暦 (`Display` gives `YYYYMMDD`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(time::Date);

/// A month (診療年月). `Display` gives `YYYYMM`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u8,
}

/// (year, month, day).
type Ymd = (i32, u8, u8);

/// The eras of identifiers.md: letter, first day, last day (inclusive; `None` = open).
const ERAS: [(u8, Ymd, Option<Ymd>); 5] = [
    (b'M', (1868, 1, 1), Some((1912, 7, 29))),
    (b'T', (1912, 7, 30), Some((1926, 12, 24))),
    (b'S', (1926, 12, 25), Some((1989, 1, 7))),
    (b'H', (1989, 1, 8), Some((2019, 4, 30))),
    (b'R', (2019, 5, 1), None),
];

fn ymd(y: i32, m: u8, d: u8) -> Option<time::Date> {
    let month = TMonth::try_from(m).ok()?;
    time::Date::from_calendar_date(y, month, d).ok()
}

fn era(letter: u8) -> Option<(time::Date, Option<time::Date>)> {
    ERAS.iter().find(|(l, _, _)| *l == letter).map(|(_, from, to)| {
        let from = ymd(from.0, from.1, from.2).expect("era start is a real date");
        let to = to.map(|t| ymd(t.0, t.1, t.2).expect("era end is a real date"));
        (from, to)
    })
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |acc, x| acc * 10 + u32::from(*x))
}

/// How a date or month was written: 西暦, or 和暦 with its era bounds and the 西暦 year.
enum Calendar {
    Seireki,
    Wareki { first: time::Date, last: Option<time::Date>, year: i32 },
}

/// Splits a date or month into its calendar and its digits (after the era letter, if any).
fn calendar(s: &str, seireki_len: usize) -> Result<(Calendar, Vec<u8>), IdError> {
    let bytes = s.as_bytes();
    let first = *bytes.first().ok_or(IdError::Format)?;
    if first.is_ascii_digit() {
        if bytes.len() != seireki_len {
            return Err(IdError::Format);
        }
        let digits = ascii_digits(s).ok_or(IdError::Format)?;
        return Ok((Calendar::Seireki, digits));
    }
    if bytes.len() != seireki_len - 1 {
        return Err(IdError::Format);
    }
    let (from, to) = era(first).ok_or(IdError::Format)?;
    let digits = ascii_digits(&s[1..]).ok_or(IdError::Format)?;
    let year_of_era = num(&digits[..2]) as i32;
    if year_of_era == 0 {
        return Err(IdError::Impossible);
    }
    let year = from.year() + year_of_era - 1;
    Ok((Calendar::Wareki { first: from, last: to, year }, digits))
}

impl Date {
    /// The latest date there is (an open end compares as it).
    pub const MAX: Date = Date(time::Date::MAX);

    /// Parses `YYYYMMDD` or `GYYMMDD`. Blank is not a date: callers treat blank as "none".
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match calendar(s, 8)? {
            (Calendar::Seireki, d) => {
                let date =
                    ymd(num(&d[..4]) as i32, num(&d[4..6]) as u8, num(&d[6..8]) as u8).ok_or(IdError::Impossible)?;
                Ok(Self(date))
            }
            (Calendar::Wareki { first, last, year }, d) => {
                let date = ymd(year, num(&d[2..4]) as u8, num(&d[4..6]) as u8).ok_or(IdError::Impossible)?;
                if date < first || last.is_some_and(|l| date > l) {
                    return Err(IdError::Impossible);
                }
                Ok(Self(date))
            }
        }
    }

    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Self> {
        ymd(year, month, day).map(Self)
    }

    pub fn year(self) -> i32 {
        self.0.year()
    }

    pub fn month_number(self) -> u8 {
        self.0.month() as u8
    }

    pub fn day(self) -> u8 {
        self.0.day()
    }

    pub fn month(self) -> Month {
        Month { year: self.year(), month: self.month_number() }
    }

    /// The date `days` later (or earlier for negative `days`); `None` outside the calendar.
    pub fn add_days(self, days: i64) -> Option<Self> {
        self.0.checked_add(time::Duration::days(days)).map(Self)
    }

    /// Days from `self` to `other` (positive if `other` is later).
    pub fn days_until(self, other: Date) -> i64 {
        (other.0 - self.0).whole_days()
    }

    /// `YYYYMMDD` as a number, the compact form used in keys and on the wire.
    pub fn to_yyyymmdd(self) -> u32 {
        self.year() as u32 * 10_000 + u32::from(self.month_number()) * 100 + u32::from(self.day())
    }

    pub fn from_yyyymmdd(v: u32) -> Option<Self> {
        ymd((v / 10_000) as i32, (v / 100 % 100) as u8, (v % 100) as u8).map(Self)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year(), self.month_number(), self.day())
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

impl Month {
    /// Parses `YYYYMM` or `GYYMM`. A month is valid in an era if any day of it is.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match calendar(s, 6)? {
            (Calendar::Seireki, d) => Self::new(num(&d[..4]) as i32, num(&d[4..6]) as u8),
            (Calendar::Wareki { first, last, year }, d) => {
                let month = Self::new(year, num(&d[2..4]) as u8)?;
                let first_day = ymd(year, month.month, 1).ok_or(IdError::Impossible)?;
                let last_day = month.last_day().ok_or(IdError::Impossible)?;
                if last_day < first || last.is_some_and(|l| first_day > l) {
                    return Err(IdError::Impossible);
                }
                Ok(month)
            }
        }
    }

    pub fn new(year: i32, month: u8) -> Result<Self, IdError> {
        if !(1..=12).contains(&month) || !(1..=9999).contains(&year) {
            return Err(IdError::Impossible);
        }
        Ok(Self { year, month })
    }

    fn last_day(self) -> Option<time::Date> {
        let m = TMonth::try_from(self.month).ok()?;
        ymd(self.year, self.month, m.length(self.year))
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    /// Months since year 0, so that windows like [M − 11, M] are integer ranges.
    pub fn index(self) -> i32 {
        self.year * 12 + i32::from(self.month) - 1
    }

    pub fn from_index(i: i32) -> Self {
        Self { year: i.div_euclid(12), month: (i.rem_euclid(12) + 1) as u8 }
    }

    pub fn to_yyyymm(self) -> u32 {
        self.year as u32 * 100 + u32::from(self.month)
    }

    /// `YYYYMM` as a number (keys and the wire), if it is a month.
    pub fn from_yyyymm(v: u32) -> Option<Self> {
        Self::new((v / 100) as i32, (v % 100) as u8).ok()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}", self.year, self.month)
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn era_bounds_of_identifiers_md() {
        assert_eq!(Date::parse("H310430").unwrap().to_string(), "20190430");
        assert_eq!(Date::parse("H310501"), Err(IdError::Impossible));
        assert_eq!(Date::parse("R010430"), Err(IdError::Impossible));
        assert_eq!(Date::parse("R010501").unwrap().to_string(), "20190501");
        assert_eq!(Date::parse("S300820").unwrap().to_string(), "19550820");
        assert_eq!(Date::parse("S640107").unwrap().to_string(), "19890107");
        assert_eq!(Date::parse("S640108"), Err(IdError::Impossible));
        assert_eq!(Date::parse("H010108").unwrap().to_string(), "19890108");
        assert_eq!(Date::parse("M010101").unwrap().to_string(), "18680101");
        assert_eq!(Date::parse("H000101"), Err(IdError::Impossible));
        assert_eq!(Date::parse("20260230"), Err(IdError::Impossible));
        assert_eq!(Date::parse("20240229").unwrap().to_string(), "20240229");
        assert_eq!(Date::parse("20230229"), Err(IdError::Impossible));
        assert_eq!(Date::parse("2026-01-01"), Err(IdError::Format));
        assert_eq!(Date::parse("X300820"), Err(IdError::Format));
        assert_eq!(Date::parse("２０２６０１０１"), Err(IdError::Format));
        assert_eq!(Date::parse(""), Err(IdError::Format));
    }

    #[test]
    fn months_valid_if_any_day_is_in_the_era() {
        assert_eq!(Month::parse("H3104").unwrap().to_string(), "201904");
        assert_eq!(Month::parse("R0105").unwrap().to_string(), "201905");
        assert_eq!(Month::parse("R0104"), Err(IdError::Impossible));
        assert_eq!(Month::parse("H3105"), Err(IdError::Impossible));
        assert_eq!(Month::parse("S6401").unwrap().to_string(), "198901");
        assert_eq!(Month::parse("H0101").unwrap().to_string(), "198901");
        assert_eq!(Month::parse("R0802").unwrap().to_string(), "202602");
        assert_eq!(Month::parse("202613"), Err(IdError::Impossible));
        assert_eq!(Month::parse("202600"), Err(IdError::Impossible));
        assert_eq!(Month::parse("20261"), Err(IdError::Format));
    }

    proptest! {
        #[test]
        fn seireki_round_trip(days in 0i64..80_000) {
            let base = Date::from_ymd(1868, 1, 1).unwrap();
            let d = base.add_days(days).unwrap();
            prop_assert_eq!(Date::parse(&d.to_string()), Ok(d));
            prop_assert_eq!(Date::from_yyyymmdd(d.to_yyyymmdd()), Some(d));
            prop_assert_eq!(Month::parse(&d.month().to_string()), Ok(d.month()));
            prop_assert_eq!(Month::from_index(d.month().index()), d.month());
        }

        #[test]
        fn wareki_agrees_with_seireki(days in 0i64..80_000) {
            let base = Date::from_ymd(1868, 1, 1).unwrap();
            let d = base.add_days(days).unwrap();
            let (letter, from, _) = ERAS.iter().rev().find(|(_, from, _)| {
                d >= Date::from_ymd(from.0, from.1, from.2).unwrap()
            }).unwrap();
            let year_of_era = d.year() - from.0 + 1;
            let wareki = format!("{}{:02}{:02}{:02}", *letter as char, year_of_era, d.month_number(), d.day());
            prop_assume!(year_of_era < 100);
            prop_assert_eq!(Date::parse(&wareki), Ok(d));
        }

        #[test]
        fn never_panics(s in "\\PC{0,10}") {
            let _ = Date::parse(&s);
            let _ = Month::parse(&s);
        }
    }
}
