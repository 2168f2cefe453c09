//! Place names simulate knows without a network, from `config/places.csv` (compiled
//! into the binary, so that it runs from any directory).

use crate::geo::GeoPoint;

const PLACES_CSV: &str = include_str!("../../../config/places.csv");

/// A named place and its centre.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: String,
    pub country: String,
    pub position: GeoPoint,
}

#[derive(Debug, Clone)]
pub struct Gazetteer {
    /// `(folded name, place index)` for every name and alias.
    names: Vec<(String, usize)>,
    places: Vec<Place>,
}

impl Gazetteer {
    /// The gazetteer shipped with simulate.
    pub fn builtin() -> Self {
        Self::parse(PLACES_CSV).expect("config/places.csv is checked by the tests")
    }

    /// Reads the CSV layout of `config/places.csv`: lines starting with `#` are
    /// comments, the first other line is the header.
    pub fn parse(csv: &str) -> Result<Self, String> {
        let mut gazetteer = Gazetteer {
            names: Vec::new(),
            places: Vec::new(),
        };
        let rows = csv
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .skip(1);
        for (index, line) in rows {
            let line_no = index + 1;
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [name, aliases, country, lat, lon] = fields[..] else {
                return Err(format!(
                    "line {line_no}: expected 5 fields, found {}",
                    fields.len()
                ));
            };
            let position = lat
                .parse()
                .ok()
                .zip(lon.parse().ok())
                .and_then(|(lat, lon)| GeoPoint::new(lat, lon))
                .ok_or_else(|| format!("line {line_no}: {lat},{lon} is not a position"))?;
            let id = gazetteer.places.len();
            gazetteer.places.push(Place {
                name: name.to_owned(),
                country: country.to_owned(),
                position,
            });
            let all_names =
                std::iter::once(name).chain(aliases.split('|').filter(|a| !a.is_empty()));
            for n in all_names {
                gazetteer.names.push((fold(n), id));
            }
        }
        Ok(gazetteer)
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    pub fn lookup(&self, name: &str) -> Option<&Place> {
        let key = fold(name);
        self.names
            .iter()
            .find(|(n, _)| *n == key)
            .map(|&(_, id)| &self.places[id])
    }

    /// Up to three known names close to `name`, best first, for a "did you mean".
    pub fn suggestions(&self, name: &str) -> Vec<&str> {
        let key = fold(name);
        let mut scored: Vec<(f64, &str)> = self
            .names
            .iter()
            .map(|(n, id)| {
                (
                    strsim::jaro_winkler(&key, n),
                    self.places[*id].name.as_str(),
                )
            })
            .filter(|(score, _)| *score > 0.85)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut names: Vec<&str> = Vec::new();
        for (_, n) in scored {
            if !names.contains(&n) && names.len() < 3 {
                names.push(n);
            }
        }
        names
    }
}

/// The form names are compared in: lower case, accents dropped, `ue`/`ü`/`u` alike,
/// punctuation as spaces. `München`, `Muenchen` and `MUNCHEN` all fold to `munchen`.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' | 'á' | 'à' | 'â' | 'ã' | 'å' | 'ă' => out.push('a'),
            'ö' | 'ó' | 'ò' | 'ô' | 'õ' | 'ø' | 'ő' => out.push('o'),
            'ü' | 'ú' | 'ù' | 'û' | 'ů' | 'ű' => out.push('u'),
            'é' | 'è' | 'ê' | 'ë' | 'ě' | 'ę' => out.push('e'),
            'í' | 'ì' | 'î' | 'ï' => out.push('i'),
            'ß' => out.push_str("ss"),
            'ç' | 'č' | 'ć' => out.push('c'),
            'ș' | 'ş' | 'š' | 'ś' => out.push('s'),
            'ț' | 'ţ' => out.push('t'),
            'ž' | 'ź' | 'ż' => out.push('z'),
            'ñ' | 'ń' => out.push('n'),
            'ř' => out.push('r'),
            'ł' => out.push('l'),
            'ý' => out.push('y'),
            c if c.is_alphanumeric() => out.push(c),
            _ => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
        }
    }
    let trimmed = out.trim_end();
    trimmed
        .replace("ae", "a")
        .replace("oe", "o")
        .replace("ue", "u")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses_and_is_complete() {
        let g = Gazetteer::builtin();
        let german = g.places.iter().filter(|p| p.country == "DE").count();
        assert!(german >= 100, "{german} German places");
        for capital in [
            "Paris",
            "Warsaw",
            "Vienna",
            "Madrid",
            "Rome",
            "Stockholm",
            "Lisbon",
        ] {
            assert!(g.lookup(capital).is_some(), "{capital} missing");
        }
    }

    #[test]
    fn every_name_is_unique() {
        let g = Gazetteer::builtin();
        for (i, (name, id)) in g.names.iter().enumerate() {
            let clash = g.names[i + 1..]
                .iter()
                .find(|(n, other)| n == name && other != id);
            assert!(clash.is_none(), "{name} names two places");
        }
    }

    #[test]
    fn matches_regardless_of_case_accents_and_spelling() {
        let g = Gazetteer::builtin();
        for spelling in ["München", "muenchen", "MUNCHEN", "Munich"] {
            assert_eq!(g.lookup(spelling).unwrap().name, "München", "{spelling}");
        }
        assert_eq!(g.lookup("halle saale").unwrap().name, "Halle (Saale)");
        assert_eq!(g.lookup("  Potsdam ").unwrap().name, "Potsdam");
    }

    #[test]
    fn places_are_where_they_should_be() {
        let g = Gazetteer::builtin();
        let potsdam = g.lookup("Potsdam").unwrap().position;
        let berlin = g.lookup("Berlin").unwrap().position;
        let d = potsdam.distance_m(berlin);
        assert!((20_000.0..35_000.0).contains(&d), "Potsdam–Berlin {d} m");
    }

    #[test]
    fn unknown_places_are_not_found_but_near_misses_are_suggested() {
        let g = Gazetteer::builtin();
        assert!(g.lookup("Atlantis").is_none());
        assert!(g.suggestions("Atlantis").is_empty());
        assert_eq!(g.suggestions("Leipzg").first(), Some(&"Leipzig"));
    }

    #[test]
    fn reports_malformed_lines() {
        let err = Gazetteer::parse("name,aliases,country,lat,lon\nX,,DE,95,10\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(Gazetteer::parse("name,aliases,country,lat,lon\nX,DE\n").is_err());
    }
}
