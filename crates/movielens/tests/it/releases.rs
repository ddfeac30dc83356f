//! Every release layout loads from its fixture into the neutral dataset, and every malformed
//! case names the file and line.

use movielens::{load, Error, Release};

use crate::fixture;

#[test]
fn ml_100k_has_genres_release_dates_and_the_user_table() {
    let data = load(&fixture("good")).unwrap();
    assert_eq!(Release::detect(&fixture("good")).unwrap(), Release::Ml100k);
    assert_eq!(data.interactions.len(), 5);
    assert_eq!(data.interactions.query_key(2), "2");
    assert_eq!(data.interactions.candidate, [0, 1, 2, 3, 0]);
    assert_eq!(data.interactions.weight.as_deref(), Some(&[5.0, 3.0, 4.0, 1.0, 2.0][..]));
    let movies = &data.candidates;
    assert_eq!(movies.keys(), ["1", "2", "3", "4"]);
    assert_eq!(movies.column("title").unwrap().string(1), Some("Première Nuit (1995)"));
    assert_eq!(movies.column("release_date").unwrap().string(0), Some("01-Jan-1996"));
    assert_eq!(movies.column("genres").unwrap().list(0).unwrap(), ["Drama"]);
    let users = data.queries.as_ref().unwrap();
    assert_eq!(users.column("occupation").unwrap().string(1), Some("other"));
    assert_eq!(users.column("age"), Some(&dataset::Column::Integer(vec![24, 53, 23])));
    assert!(data.source.contains("MovieLens 100k"));
}

#[test]
fn ml_1m_reads_latin1_dat_files_and_users() {
    let data = load(&fixture("ml-1m")).unwrap();
    assert_eq!(Release::detect(&fixture("ml-1m")).unwrap(), Release::Dat);
    assert_eq!(data.interactions.len(), 4);
    assert_eq!(data.candidates.column("title").unwrap().string(1), Some("Première Nuit (1995)"));
    assert_eq!(data.candidates.column("genres").unwrap().list(2).unwrap(), ["Drama", "Thriller"]);
    assert_eq!(data.interactions.timestamp.as_deref().unwrap()[0], 978300760);
    let users = data.queries.as_ref().unwrap();
    assert_eq!(users.column("occupation"), Some(&dataset::Column::Integer(vec![10, 16, 15])));
    assert_eq!(users.column("gender").unwrap().string(0), Some("F"));
}

#[test]
fn ml_10m_has_half_star_ratings_tags_and_colons_in_titles() {
    let data = load(&fixture("ml-10m")).unwrap();
    assert_eq!(data.candidates.column("title").unwrap().string(1), Some("Lines::Colons: A Story (2001)"));
    assert!(data.candidates.column("genres").unwrap().list(1).unwrap().is_empty());
    assert_eq!(data.interactions.weight.as_deref(), Some(&[4.5, 0.5, 3.0][..]));
    assert_eq!(data.candidates.column("tags").unwrap().list(1).unwrap(), ["mind-bending"], "distinct per movie");
    assert_eq!(data.candidates.column("tags").unwrap().list(0).unwrap(), ["slow"]);
    assert!(data.queries.is_none());
}

#[test]
fn csv_releases_have_quoted_titles_no_genres_and_tags() {
    let data = load(&fixture("ml-latest-small")).unwrap();
    assert_eq!(Release::detect(&fixture("ml-latest-small")).unwrap(), Release::Csv);
    let titles = data.candidates.column("title").unwrap();
    assert_eq!(titles.string(1), Some("American President, The (1995)"));
    assert_eq!(titles.string(2), Some("Pokémon Heroes (2003)"));
    assert!(data.candidates.column("genres").unwrap().list(2).unwrap().is_empty(), "(no genres listed)");
    assert_eq!(data.candidates.column("tags").unwrap().list(0).unwrap(), ["pixar"]);
    assert_eq!(data.candidates.column("tags").unwrap().list(1).unwrap(), ["politics, satire"]);
    assert_eq!(data.interactions.candidate, [0, 2, 1, 0]);
    assert_eq!(data.interactions.weight.as_deref(), Some(&[4.0, 4.5, 3.5, 0.5][..]));
}

/// Copies a fixture directory, applies `edit` to one file, and returns the load error.
fn broken(release: &str, file: &str, edit: impl Fn(&mut Vec<u8>)) -> Error {
    let dir = std::env::temp_dir().join(format!("movielens-broken-{release}-{file}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(release)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    edit(&mut bytes);
    std::fs::write(dir.join(file), bytes).unwrap();
    let error = load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    error
}

fn append(text: &'static str) -> impl Fn(&mut Vec<u8>) {
    move |bytes| bytes.extend_from_slice(text.as_bytes())
}

#[test]
fn malformed_release_files_name_file_and_line() {
    let cases = [
        (broken("ml-1m", "ratings.dat", append("4::1::5\n")), "ratings.dat:5: expected 4 fields"),
        (broken("ml-1m", "ratings.dat", append("4::99::5::1\n")), "ratings.dat:5: rating of movie id 99"),
        (broken("ml-1m", "ratings.dat", append("4::1::9::1\n")), "ratings.dat:5: field `Rating`"),
        (broken("ml-1m", "movies.dat", append("1::Again::Drama\n")), "movies.dat:4: movie id 1 listed twice"),
        (broken("ml-1m", "users.dat", append("4::F::old::1::1\n")), "users.dat:4: field `Age`"),
        (broken("ml-10m", "tags.dat", append("5::99::x::1\n")), "tags.dat:4: rating of movie id 99"),
        (broken("ml-latest-small", "ratings.csv", append("4,1,good,1\n")), "ratings.csv:6: column `rating`"),
        (broken("ml-latest-small", "ratings.csv", append("4,77,1,1\n")), "ratings.csv:6: column `movieId`: \"77\""),
        (
            broken("ml-latest-small", "movies.csv", append("1,Dup,Drama\n")),
            "movies.csv:5: column `movieId`: key \"1\" repeats",
        ),
        (
            broken("good", "u.item", |b| {
                let at = b.len() - 2;
                b[at] = b'7';
            }),
            "u.item:4: genre flag `Western`",
        ),
        (broken("good", "u.user", append("4|x|M|writer|1\n")), "u.user:4: field `age`"),
    ];
    for (error, needle) in cases {
        assert!(error.to_string().contains(needle), "expected {needle:?} in {error}");
    }
    let nothing = load(&fixture("bad")).unwrap_err();
    assert!(nothing.to_string().contains("no MovieLens files found"), "{nothing}");
}

#[test]
fn mutated_release_files_load_or_fail_cleanly_never_panic() {
    let files = [
        ("good", "u.data"),
        ("good", "u.item"),
        ("good", "u.user"),
        ("ml-1m", "ratings.dat"),
        ("ml-1m", "movies.dat"),
        ("ml-1m", "users.dat"),
        ("ml-10m", "tags.dat"),
        ("ml-latest-small", "ratings.csv"),
        ("ml-latest-small", "movies.csv"),
        ("ml-latest-small", "tags.csv"),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    let replacements = [b':', b'|', b',', b'"', b'\n', b'\t', 0xe9, 0xff, b'x', b'0', b'-', b' '];
    let (mut ok, mut errors) = (0, 0);
    for round in 0..2000 {
        let (release, file) = files[round % files.len()];
        let mut edit = |bytes: &mut Vec<u8>| match next() % 3 {
            0 => {
                let at = next() % bytes.len();
                bytes[at] = replacements[next() % replacements.len()];
            }
            1 => bytes.truncate(next() % bytes.len()),
            _ => {
                let at = next() % (bytes.len() + 1);
                bytes.insert(at, replacements[next() % replacements.len()]);
            }
        };
        let dir = std::env::temp_dir().join(format!("movielens-mutated-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(fixture(release)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let mut bytes = std::fs::read(dir.join(file)).unwrap();
        edit(&mut bytes);
        std::fs::write(dir.join(file), bytes).unwrap();
        match load(&dir) {
            Ok(data) => {
                data.validate().unwrap();
                ok += 1;
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                errors += 1;
            }
        }
    }
    eprintln!("release mutations: {ok} loaded, {errors} rejected");
    assert!(ok > 100 && errors > 100);
}
