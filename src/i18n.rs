//! The one message catalogue: every human-facing sentence of catraca in English and in
//! Brazilian Portuguese, chosen once per process.
//!
//! The language is `--lang` (`en`, `pt-BR`) when given, else the locale as POSIX orders
//! it (`LC_ALL`, then `LC_MESSAGES`, then `LANG`): `pt_BR*` (or `pt*`) is Portuguese,
//! anything else English. JSON keys, metric names and file formats never change with it.
//!
//! A message is a [`Msg`] with an English and a Portuguese template whose `{name}`
//! placeholders are filled by [`tr`]; a test checks that both templates of every message
//! have the same placeholders. Short fragments that other modules keep as `&'static str`
//! in English (a card's problem, a CSV hint) are translated by [`fragment`].

use std::fmt::Display;
use std::sync::OnceLock;

/// The languages catraca speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    PtBr,
}

static LANG: OnceLock<Lang> = OnceLock::new();

impl Lang {
    /// Reads a `--lang` value or a locale name (`pt_BR.UTF-8`, `pt-BR`, `en_US`, `C`).
    pub fn parse(name: &str) -> Option<Lang> {
        let name = name.trim().to_ascii_lowercase().replace('-', "_");
        if name.is_empty() {
            None
        } else if name.starts_with("pt") {
            Some(Lang::PtBr)
        } else {
            Some(Lang::En)
        }
    }

    /// From the locale variables, as POSIX orders them; `env` reads one.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Lang {
        Lang::from_locale(env).unwrap_or(Lang::En)
    }

    /// The locale's language, `None` when no locale variable is set.
    pub fn from_locale(env: &dyn Fn(&str) -> Option<String>) -> Option<Lang> {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|var| env(var).filter(|v| !v.is_empty()))
            .and_then(|v| Lang::parse(&v))
    }
}

/// Chooses the language for this process: `flag` (`--lang`) if given, else the
/// locale, else `file` (`lang` in catraca.toml), else English. Only the first call
/// counts.
pub fn init(flag: Option<&str>, file: Option<&str>) -> Lang {
    let lang = flag
        .and_then(Lang::parse)
        .or_else(|| Lang::from_locale(&|v| std::env::var(v).ok()))
        .or_else(|| file.and_then(Lang::parse))
        .unwrap_or(Lang::En);
    *LANG.get_or_init(|| lang)
}

/// The value of `flag` (e.g. `--lang`) on a command line, before clap parses it: the
/// help text depends on the language.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&prefix)
            .map(str::to_string)
            .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
    })
}

/// The language in use (English until [`init`] is called).
pub fn lang() -> Lang {
    LANG.get().copied().unwrap_or(Lang::En)
}

/// Whether messages are in Portuguese.
pub fn is_pt() -> bool {
    lang() == Lang::PtBr
}

macro_rules! catalogue {
    ($($key:ident: $en:literal, $pt:literal;)*) => {
        /// Every message, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($key),* }

        impl Msg {
            pub const ALL: &'static [Msg] = &[$(Msg::$key),*];

            /// The template in `lang`.
            pub fn template(self, lang: Lang) -> &'static str {
                match self {
                    $(Msg::$key => match lang { Lang::En => $en, Lang::PtBr => $pt },)*
                }
            }
        }
    };
}

catalogue! {
    // The command line.
    ErrorPrefix: "error: {error}", "erro: {error}";
    InterruptedFirst: "interrupted: finishing the requests in flight, then reporting (Ctrl-C again to quit now)",
        "interrompido: terminando as requisições em andamento, depois o relatório (Ctrl-C de novo para sair já)";
    InterruptedAgain: "interrupted again: exiting now", "interrompido de novo: saindo agora";
    DashboardAt: "dashboard: {url}", "painel: {url}";
    DashboardLingers: "dashboard: {url} stays up for {seconds} s (Ctrl-C ends it)",
        "painel: {url} continua no ar por {seconds} s (Ctrl-C encerra)";

    // Progress, while a run goes.
    ProgressLine: "progress: {done}/{total} ({percent}%)", "progresso: {done}/{total} ({percent}%)";
    // indicatif's template: its own {placeholders} pass through untouched.
    ProgressBar: "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({percent}%) {rate} eta {eta}",
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({percent}%) {rate} faltam {eta}";
    ProgressRate: "{rate} pairs/s", "{rate} pares/s";

    // Reasons and warnings composed while a run goes.
    WhyAmbiguous: "registration {registration} is on this device {count} times (ids {ids}): remove the extra copies there",
        "a matrícula {registration} está {count} vezes neste dispositivo (ids {ids}): remova as cópias a mais nele";
    WhyCardOwned: "card {card}, which already belongs to registration {owner} on this device: remove it there or fix the CSV",
        "o cartão {card}, que já pertence à matrícula {owner} neste dispositivo: remova-o lá ou corrija o CSV";
    WhyCardWanted: "registration {registration} wants {why}", "a matrícula {registration} quer {why}";
    WarnHalted: "{failed} pairs failed, more than --max-failures {limit}: stopped early; fix the cause and run again",
        "{failed} pares falharam, mais que --max-failures {limit}: parada antecipada; corrija a causa e rode de novo";
    WarnNotCached: "could not record results in the cache ({error}); the run goes on, and those pairs will be checked on the devices next time",
        "não foi possível gravar resultados no cache ({error}); a execução continua, e esses pares serão conferidos nos dispositivos na próxima vez";
    WarnCacheUnavailable: "cache unavailable ({error}); the run goes on without recording results",
        "cache indisponível ({error}); a execução continua sem gravar resultados";
    WarnInsecureTls: "--insecure-tls: the certificates of {devices} are not checked; pin them with tls_fingerprint in the devices file",
        "--insecure-tls: os certificados de {devices} não são conferidos; fixe-os com tls_fingerprint no arquivo de dispositivos";
    WarnRetryBudget: "retry budget spent ({spent} retries for {requests} requests): further transient failures are reported, not retried",
        "orçamento de novas tentativas esgotado ({spent} tentativas para {requests} requisições): as próximas falhas passageiras são relatadas, não repetidas";

    // Cards (card.rs): why a card cannot be written, and how to set a device's format.
    CardFacilityBeyondW26: "card_format {format} is Wiegand-26, whose facility code goes up to 255, and this one is {value}",
        "o card_format {format} é Wiegand-26, cujo código de facilidade vai até 255, e este é {value}";
    CardNumberBeyondW26: "card_format {format} is Wiegand-26, whose card number goes up to 65535, and this one is {value}",
        "o card_format {format} é Wiegand-26, cujo número de cartão vai até 65535, e este é {value}";
    CardPairWithoutDecimal: "card_format {format} takes a plain number, and a facility,number pair has no single decimal",
        "o card_format {format} aceita um número simples, e um par facilidade,número não tem um decimal único";
    CardPairWithoutHex: "card_format {format} takes a plain number, and a facility,number pair has no single hex value",
        "o card_format {format} aceita um número simples, e um par facilidade,número não tem um valor hexadecimal único";
    CardTooLong: "card_format {format} writes it as {text}, {chars} characters, and the device takes at most {max}",
        "o card_format {format} o escreve como {text}, {chars} caracteres, e o dispositivo aceita no máximo {max}";
    CardNotU64: "{text} does not fit the device's 64-bit card value (at most 18446744073709551615)",
        "{text} não cabe no valor de cartão de 64 bits do dispositivo (no máximo 18446744073709551615)";
    CardOnDevice: "card {card} cannot be written on {device}: {why}; fix the card in the CSV, or set card_format for this device (catraca learn-card tells which)",
        "o cartão {card} não pode ser gravado em {device}: {why}; corrija o cartão no CSV ou defina card_format para este dispositivo (catraca learn-card diz qual)";
    CardFitsNoDevice: "{file} line {line}, field card: card \"{card}\" fits no device ({reasons}): fix the card, or set card_format for the devices (catraca learn-card reads the format from one swipe)",
        "{file} linha {line}, campo cartao: o cartão \"{card}\" não cabe em nenhum dispositivo ({reasons}): corrija o cartão ou defina card_format para os dispositivos (catraca learn-card lê o formato de um cartão passado)";
    CardSameOnDevice: "{file} line {line}, field card: card \"{card}\" is the same card as \"{first_card}\" on line {first_line} for {devices} (card_format {format} writes both as {written}): each card must belong to one person",
        "{file} linha {line}, campo cartao: o cartão \"{card}\" é o mesmo cartão que \"{first_card}\" da linha {first_line} para {devices} (o card_format {format} escreve os dois como {written}): cada cartão deve pertencer a uma só pessoa";
    CardUncertainDefault: "device {name}: {kind} readers differ in how they write a facility,number card; catraca writes them as {format} (the vendor's documented default), which is not certain: swipe one card with `catraca learn-card --device {name} --card F,N` and set card_format for this device",
        "dispositivo {name}: os leitores {kind} diferem em como escrevem um cartão facilidade,número; o catraca os grava como {format} (o padrão documentado do fabricante), que não é certo: passe um cartão com `catraca learn-card --device {name} --card F,N` e defina card_format para este dispositivo";
    CfgCardFormat: "card_format {name} is not a card format: write one of {names}",
        "card_format {name} não é um formato de cartão: escreva um de {names}";
    CfgCardHexOnNumber: "card_format {format} writes hexadecimal, and a {kind} device stores its card as a number: use controlid, w26 or decimal",
        "o card_format {format} escreve hexadecimal, e um dispositivo {kind} guarda o cartão como número: use controlid, w26 ou decimal";
    CfgCardPadOnNumber: "card_pad does nothing on a {kind} device (its card value is a number, which has no leading zeros): remove it",
        "card_pad não faz nada num dispositivo {kind} (o valor do cartão é um número, sem zeros à esquerda): remova-o";
    CfgCardPad: "card_pad = {pad}: give the length to zero-pad to, from 1 to {max}",
        "card_pad = {pad}: dê o comprimento a completar com zeros, de 1 a {max}";

    // The summary.
    SumParticipants: "participants", "participantes";
    SumDevices: "devices", "dispositivos";
    SumOperations: "operations", "operações";
    SumRegistered: "registered", "cadastrados";
    SumWouldRegister: "would register", "cadastraria";
    SumUpdated: "updated", "atualizados";
    SumWouldUpdate: "would update", "atualizaria";
    SumUnchanged: "unchanged", "inalterados";
    SumSkipped: "skipped (cache)", "pulados (cache)";
    SumFailed: "failed", "falharam";
    SumRemoved: "removed", "removidos";
    SumWouldRemove: "would remove", "removeria";
    SumVerified: "verified", "conferidos";
    SumVerifiedWhy: "{count} pairs read back", "{count} pares relidos";
    SumNotCached: "not cached", "fora do cache";
    SumNotCachedWhy: "{count} (done on the device, will be checked again next run)",
        "{count} (feitos no dispositivo, serão conferidos de novo na próxima execução)";
    SumDuration: "duration", "duração";
    SumInterrupted: " (interrupted)", " (interrompida)";
    SumCache: "cache", "cache";
    ColDevice: "device", "dispositivo";
    ColKind: "kind", "tipo";
    ColToAdd: "to add", "a cadastrar";
    ColToUpdate: "to update", "a atualizar";
    ColToRemove: "to remove", "a remover";
    ColSkipped: "skipped", "pulados";
    ColChanges: "changes", "alterações";
    SumPhotos: "photos: {sent} sent, {refused} refused", "fotos: {sent} enviadas, {refused} recusadas";
    NamesTruncated: "names cut to the device's limit: {count}", "nomes cortados no limite do aparelho: {count}";
    SumNothingWritten: "nothing was written: run `catraca enroll` with the same arguments to apply this",
        "nada foi gravado: rode `catraca enroll` com os mesmos argumentos para aplicar isto";
    SumFailures: "failures ({count}):", "falhas ({count}):";
    SumFailureLine: "  {registration} on {device}: {error}", "  {registration} em {device}: {error}";
    SumMoreFailures: "  ... and {count} more (all of them are in the JSON report: --report FILE)",
        "  ... e mais {count} (todas estão no relatório JSON: --report ARQUIVO)";

    // Removals (`--prune`).
    PruneTooMany: "device {device} ({url}): --prune would remove {count} of its {total} people, more than --max-remove {limit}",
        "dispositivo {device} ({url}): --prune removeria {count} das suas {total} pessoas, mais que --max-remove {limit}";
    PruneRefused: "nothing was removed nor enrolled: check that the CSV is the whole list; if these removals are meant, raise the limit (e.g. --max-remove 100%)",
        "nada foi removido nem cadastrado: confira se o CSV é a lista inteira; se essas remoções são desejadas, aumente o limite (p.ex. --max-remove 100%)";

    // `catraca check`.
    CheckYes: "yes", "sim";
    CheckNo: "no", "não";
    CheckLoginOk: "ok", "ok";
    CheckLoginRefused: "refused", "recusado";
    CheckNotReported: "not reported", "não informado";
    CheckReady: "ready", "pronto";
    CheckReadyWarning: "ready (warning)", "pronto (aviso)";
    CheckNotReady: "NOT READY", "NÃO PRONTO";
    CheckColReachable: "reachable", "acessível";
    CheckColLogin: "login", "login";
    CheckColFirmware: "firmware / model", "firmware / modelo";
    CheckColPeople: "people", "pessoas";
    CheckColClock: "clock drift", "desvio do relógio";
    CheckColRoundTrip: "round trip", "ida e volta";
    CheckColStatus: "status", "situação";
    CheckColCards: "cards", "cartões";
    CheckCardsDefault: "{format} (default)", "{format} (padrão)";
    CheckCardsSet: "{format} (set)", "{format} (definido)";
    CheckCardsUncertain: "card format {format} is the {kind} default, which is not certain for this vendor's readers: run `catraca learn-card --device {name} --card F,N` with one card, then set card_format for this device",
        "o formato de cartão {format} é o padrão {kind}, que não é certo para os leitores deste fabricante: rode `catraca learn-card --device {name} --card F,N` com um cartão e defina card_format para este dispositivo";
    CheckWarning: "warning", "aviso";
    CheckCertificate: "certificate {fingerprint} ({how})", "certificado {fingerprint} ({how})";
    CheckCertPinned: "pinned", "fixado";
    CheckCertAuthority: "issued by a trusted authority", "emitido por uma autoridade confiável";
    CheckCertUnchecked: "not checked: --insecure-tls", "não conferido: --insecure-tls";
    CheckClockOff: "clock is {off} off this machine's: validity windows will open and close at the wrong time; set the device's clock (or NTP)",
        "o relógio está {off} diferente do desta máquina: as janelas de validade vão abrir e fechar na hora errada; acerte o relógio do dispositivo (ou o NTP)";
    CheckSummary: "{ready} of {total} devices ready", "{ready} de {total} dispositivos prontos";
    CheckFixOthers: ": fix the others before enrolling", ": corrija os outros antes de cadastrar";

    // The participants file.
    CsvRead: "cannot read {file}: {error}: check the path and that the file is readable",
        "não foi possível ler {file}: {error}: confira o caminho e se o arquivo pode ser lido";
    CsvUtf16: "{file} is UTF-16 text, which catraca does not read: save it from the spreadsheet as \"CSV UTF-8\" or \"CSV (separado por vírgulas)\"",
        "{file} está em UTF-16, que o catraca não lê: salve-o na planilha como \"CSV UTF-8\" ou \"CSV (separado por vírgulas)\"";
    CsvEmpty: "{file} has no participants: the file is empty: write a header line (matricula;nome;cartao;inicio;fim;grupo) and one line per person",
        "{file} não tem participantes: o arquivo está vazio: escreva uma linha de cabeçalho (matricula;nome;cartao;inicio;fim;grupo) e uma linha por pessoa";
    CsvNoRows: "{file} has no participants: nothing follows the header on line {header_line}: add one line per person below it",
        "{file} não tem participantes: nada vem depois do cabeçalho na linha {header_line}: acrescente uma linha por pessoa abaixo dele";
    CsvMalformed: "{file} line {line}: {error}: check the quotes around this line",
        "{file} linha {line}: {error}: confira as aspas perto desta linha";
    CsvMissingColumn: "{file} line {line}, field {column}: the header has no {column} column: add one named {accepted} (the header has {found})",
        "{file} linha {line}, campo {column}: o cabeçalho não tem a coluna {column}: acrescente uma chamada {accepted} (o cabeçalho tem {found})";
    CsvDuplicateColumn: "{file} line {line}, field {second}: columns \"{first}\" and \"{second}\" both hold the {column}: keep only one of them",
        "{file} linha {line}, campo {second}: as colunas \"{first}\" e \"{second}\" trazem ambas o campo {column}: mantenha só uma delas";
    CsvFieldCount: "{file} line {line}: the row has {found} fields but the header on line {header_line} has {expected}: {hint}",
        "{file} linha {line}: a linha tem {found} campos, mas o cabeçalho na linha {header_line} tem {expected}: {hint}";
    CsvMissingValue: "{file} line {line}, field {field}: is empty: every person needs a {what}",
        "{file} linha {line}, campo {field}: está vazio: toda pessoa precisa de {what}";
    CsvRegistrationTooLong: "{file} line {line}, field {field}: \"{value}\" is {length} bytes long: catraca accepts at most {max} (an accented letter takes 2): shorten it",
        "{file} linha {line}, campo {field}: \"{value}\" tem {length} bytes: o catraca aceita no máximo {max} (uma letra acentuada ocupa 2): encurte-a";
    CsvControlCharacter: "{file} line {line}, field {field}: {value} has a control character in it (a tab, or a line break inside quotes): remove it",
        "{file} linha {line}, campo {field}: {value} tem um caractere de controle (uma tabulação, ou uma quebra de linha entre aspas): remova-o";
    CsvBadCard: "{file} line {line}, field {field}: \"{value}\" {problem}: write a Wiegand card as facility,number (123,45678, in quotes if the file separates fields with commas) or a plain card number (4012345678)",
        "{file} linha {line}, campo {field}: \"{value}\" {problem}: escreva um cartão Wiegand como facility,número (123,45678, entre aspas se o arquivo separa os campos com vírgulas) ou um número de cartão simples (4012345678)";
    CsvBadDate: "{file} line {line}, field {field}: \"{value}\" {problem}: write the date as 2025-03-01 or 01/03/2025, optionally with a time (08:00 or 08:00:00) and an offset from UTC (-03:00 or Z)",
        "{file} linha {line}, campo {field}: \"{value}\" {problem}: escreva a data como 2025-03-01 ou 01/03/2025, com hora opcional (08:00 ou 08:00:00) e deslocamento de UTC (-03:00 ou Z)";
    CsvEndBeforeBegin: "{file} line {line}, field {end_field}: \"{end}\" comes before \"{begin}\" in field {begin_field}: access would end before it begins; swap them or correct the wrong one",
        "{file} linha {line}, campo {end_field}: \"{end}\" vem antes de \"{begin}\" no campo {begin_field}: o acesso terminaria antes de começar; troque-os ou corrija o errado";
    CsvDuplicateRegistration: "{file} line {line}, field {field}: \"{value}\" is already on line {first_line}: each person must appear once",
        "{file} linha {line}, campo {field}: \"{value}\" já está na linha {first_line}: cada pessoa deve aparecer uma única vez";
    CsvDuplicateCard: "{file} line {line}, field {field}: card {card} is already on line {first_line} (registration {first_registration}{written}): a device opens for one person per card; give each person their own card or leave the field empty",
        "{file} linha {line}, campo {field}: o cartão {card} já está na linha {first_line} (matrícula {first_registration}{written}): um dispositivo abre para uma pessoa por cartão; dê a cada pessoa o seu cartão ou deixe o campo vazio";
    CsvWrittenDifferently: ", written {card}, the same number on a device", ", escrito {card}, o mesmo número num dispositivo";

    // Devices and their errors (the reason of a failed pair).
    DevUnreachable: "unreachable: {reason}", "inacessível: {reason}";
    DevTimeout: "timed out after {seconds} s without an answer", "sem resposta depois de {seconds} s";
    DevConnectionLost: "connection lost: {reason}", "conexão perdida: {reason}";
    DevLoginRefused: "login refused ({status}): {message}: check {hint}",
        "login recusado ({status}): {message}: confira {hint}";
    DevRejected: "device refused the request ({status}): {message}",
        "o dispositivo recusou a requisição ({status}): {message}";
    DevBusy: "device busy or failing ({status}){hint}", "dispositivo ocupado ou com falha ({status}){hint}";
    DevTooManyRequests: ": too many requests", ": requisições demais";
    DevInvalidAnswer: "invalid answer: {reason}", "resposta inválida: {reason}";
    DevFull: "device full: {reason}: remove people from it or enroll them on another device",
        "dispositivo cheio: {reason}: remova pessoas dele ou cadastre-as em outro dispositivo";
    DevPhotoRefused: "photo refused: {reason}", "foto recusada: {reason}";
    DevInterrupted: "not sent: the run was interrupted", "não enviado: a execução foi interrompida";
    DevHalted: "not sent: the run halted after too many failures",
        "não enviado: a execução parou depois de falhas demais";
    TlsUntrusted: "the device's certificate is not trusted: {reason}. It presents {presented}: if the device shows that same fingerprint on its own screen or web page, pin it with tls_fingerprint = \"{presented}\" in its entry of the devices file; or run with --insecure-tls to accept any certificate (encrypted, but the device is not authenticated)",
        "o certificado do dispositivo não é confiável: {reason}. Ele apresenta {presented}: se o dispositivo mostra essa mesma impressão digital na própria tela ou página web, fixe-a com tls_fingerprint = \"{presented}\" na entrada dele no arquivo de dispositivos; ou rode com --insecure-tls para aceitar qualquer certificado (cifrado, mas o dispositivo não é autenticado)";
    TlsNotPinned: "the device's certificate is not the pinned one: it presents {presented}, and its tls_fingerprint is {pinned}. A factory reset or a firmware update makes a new certificate: compare it with the one the device shows and pin that; otherwise something else is answering at this address",
        "o certificado do dispositivo não é o fixado: ele apresenta {presented}, e o tls_fingerprint dele é {pinned}. Um reset de fábrica ou uma atualização de firmware gera um certificado novo: compare-o com o que o dispositivo mostra e fixe esse; senão, outra coisa está respondendo neste endereço";
    TlsHandshake: "TLS with the device failed: {reason}", "o TLS com o dispositivo falhou: {reason}";
    TlsNotTls: "{reason}: the device does not speak TLS on this port; is its address http://?",
        "{reason}: o dispositivo não fala TLS nesta porta; o endereço dele é http://?";
    TlsNoAuthorities: "this machine trusts no certificate authority (install the ca-certificates package, or give --ca-cert)",
        "esta máquina não confia em nenhuma autoridade certificadora (instale o pacote ca-certificates ou informe --ca-cert)";
    TlsUnknownIssuer: "it is not signed by an authority this machine trusts (self-signed?)",
        "ele não é assinado por uma autoridade em que esta máquina confia (autoassinado?)";
    TlsWrongName: "it is not made out for {host}", "ele não foi emitido para {host}";
    TlsWrongNameShown: "it is made out for {names}, not for {host}: use one of those names in the device's URL, or pin the certificate",
        "ele foi emitido para {names}, não para {host}: use um desses nomes na URL do dispositivo, ou fixe o certificado";
    TlsNothingInCommon: "{reason}: the device and catraca share no TLS version or cipher (catraca speaks TLS 1.2 and 1.3); reach it over http:// or update its firmware",
        "{reason}: o dispositivo e o catraca não têm versão nem cifra TLS em comum (o catraca fala TLS 1.2 e 1.3); acesse-o por http:// ou atualize o firmware dele";
    HintMaybeHttps: "; if the device serves HTTPS, write its address as https://",
        "; se o dispositivo serve HTTPS, escreva o endereço dele como https://";
    TlsExpired: "it has expired (or this machine's clock is wrong)", "ele expirou (ou o relógio desta máquina está errado)";
    TlsNotYetValid: "it is not valid yet (check this machine's clock)", "ele ainda não é válido (confira o relógio desta máquina)";
    DevInternal: "internal error: {reason}", "erro interno: {reason}";
    CfgRead: "cannot read the devices file {path}: {error}",
        "não foi possível ler o arquivo de dispositivos {path}: {error}";
    CfgParse: "devices file {path}: {message}", "arquivo de dispositivos {path}: {message}";
    CfgNoDevices: "no devices: give --devices FILE or at least one --device URL",
        "nenhum dispositivo: informe --devices ARQUIVO ou ao menos uma --device URL";
    CfgNoTables: "no [[device]] tables: add one per turnstile, with at least `url`",
        "nenhuma tabela [[device]]: acrescente uma por catraca, com pelo menos `url`";
    CfgEntry: "devices file {path}, device #{number}", "arquivo de dispositivos {path}, dispositivo nº {number}";
    CfgBadFamily: "{kind} is not a device family: write controlid+URL, hikvision+URL or intelbras+URL",
        "{kind} não é uma família de dispositivos: escreva controlid+URL, hikvision+URL ou intelbras+URL";
    CfgEmptyName: "`name` is empty: give the device a name", "`name` está vazio: dê um nome ao dispositivo";
    CfgDuplicateName: "two devices are named {name}: names must be unique",
        "dois dispositivos se chamam {name}: os nomes devem ser únicos";
    CfgDuplicateUrl: "{url} is listed twice", "{url} aparece duas vezes";
    CfgMaxInFlight: "`max_in_flight` must be at least 1", "`max_in_flight` deve ser pelo menos 1";
    CfgRate: "`rate` must be a positive number of requests per second",
        "`rate` deve ser um número positivo de requisições por segundo";
    CfgBothPasswords: "give either password_env or password_file, not both",
        "informe password_env ou password_file, não os dois";
    CfgPasswordEnvUnset: "password_env names {var}, but that variable is not set: export {var}=... before running",
        "password_env indica {var}, mas essa variável não está definida: faça export {var}=... antes de rodar";
    CfgPasswordFile: "password_file {path}: {error}", "password_file {path}: {error}";
    CfgPasswordFileOpen: "password_file {path} can be read by other users (mode {mode}): run chmod 600 {path}",
        "password_file {path} pode ser lido por outros usuários (modo {mode}): rode chmod 600 {path}";
    CfgPasswordFileEmpty: "password_file {path} is empty", "password_file {path} está vazio";
    CfgNoFingerprints: "tls_fingerprint = [] pins nothing: give the device's certificate fingerprint, or remove the line",
        "tls_fingerprint = [] não fixa nada: informe a impressão digital do certificado do dispositivo, ou remova a linha";
    CfgFingerprintHttp: "tls_fingerprint is for https:// devices, and {url} is plain HTTP: remove it or write the device's https:// address",
        "tls_fingerprint é para dispositivos https://, e {url} é HTTP simples: remova-o ou escreva o endereço https:// do dispositivo";
    CfgNotUrl: "{url} is not a device URL: write it as http://HOST[:PORT] or https://HOST[:PORT], e.g. http://10.0.0.5",
        "{url} não é a URL de um dispositivo: escreva como http://HOST[:PORTA] ou https://HOST[:PORTA], p.ex. http://10.0.0.5";
    CfgUrlCredentials: "a device URL must not hold credentials: remove `user:password@` and set CATRACA_LOGIN / CATRACA_PASSWORD or password_env",
        "a URL de um dispositivo não pode conter credenciais: tire `usuario:senha@` e defina CATRACA_LOGIN / CATRACA_PASSWORD ou password_env";
    CfgNoHost: "{url} has no host: write it as http://HOST[:PORT]", "{url} não tem host: escreva como http://HOST[:PORTA]";
    CfgFactoryPassword: "device {name}: no password configured, using the factory default ({login}/{password}); set CATRACA_PASSWORD or password_env",
        "dispositivo {name}: nenhuma senha configurada, usando o padrão de fábrica ({login}/{password}); defina CATRACA_PASSWORD ou password_env";

    // --help.
    // Many sites: publish, agent, status.
    SitesPublished: "published run {id}: {jobs} jobs for {people} people on {devices} devices, sites: {sites}",
        "execução {id} publicada: {jobs} trabalhos para {people} pessoas em {devices} dispositivos, locais: {sites}";
    SitesAlreadyPublished: "run {id} was already published: nothing added",
        "a execução {id} já estava publicada: nada foi acrescentado";
    SitesNoPhotos: "{file}, line {line}, field {field}: photos do not travel through the queue yet; publish the list without its photo column and enroll photos with `catraca enroll` at each site",
        "{file}, linha {line}, campo {field}: as fotos ainda não viajam pela fila; publique a lista sem a coluna de fotos e cadastre as fotos com `catraca enroll` em cada local";
    AgentStarted: "agent {name} of site {site}: {devices} devices, queue {queue} ({stream}), cache {cache}",
        "agente {name} do local {site}: {devices} dispositivos, fila {queue} ({stream}), cache {cache}";
    AgentJob: "job {job} ({people} people on {device}): {registered} registered, {updated} updated, {unchanged} unchanged, {skipped} skipped, {failed} failed, {removed} removed in {seconds} s",
        "trabalho {job} ({people} pessoas em {device}): {registered} cadastradas, {updated} atualizadas, {unchanged} inalteradas, {skipped} puladas, {failed} com falha, {removed} removidas em {seconds} s";
    AgentStopped: "agent {name} of site {site}: stopped, every job it took is acknowledged",
        "agente {name} do local {site}: parado, cada trabalho que pegou foi confirmado";
    AgentTookOver: "agent {name}: took over job {entry} that another agent of site {site} left unfinished for {seconds} s",
        "agente {name}: assumiu o trabalho {entry} que outro agente do local {site} deixou sem terminar por {seconds} s";
    AgentDeviceMissing: "device {device} is not configured at site {site}: add it to {file}, or give it the right site in the fleet file",
        "o dispositivo {device} não está configurado no local {site}: acrescente-o a {file}, ou dê a ele o local certo no arquivo da frota";
    StatusWaiting: "run {id}: waiting for {pending} of {total} jobs (Ctrl-C stops waiting and prints the report so far)",
        "execução {id}: esperando {pending} de {total} trabalhos (Ctrl-C para de esperar e imprime o relatório até aqui)";
    StatusRunDone: "run {id}: {done} of {total} jobs done", "execução {id}: {done} de {total} trabalhos feitos";
    StatusRunGoing: "run {id}: {done} of {total} jobs done (still going)",
        "execução {id}: {done} de {total} trabalhos feitos (ainda em andamento)";
    StatusSite: "site {site}: {devices} devices, {operations} operations, {registered} registered, {updated} updated, {unchanged} unchanged, {skipped} skipped, {failed} failed, {removed} removed; {pending} jobs pending",
        "local {site}: {devices} dispositivos, {operations} operações, {registered} cadastradas, {updated} atualizadas, {unchanged} inalteradas, {skipped} puladas, {failed} com falha, {removed} removidas; {pending} trabalhos pendentes";
    StatusDeviceFailed: "device {device} (site {site}): {failed} failed", "dispositivo {device} (local {site}): {failed} com falha";
    StatusNoAgents: "agents: none seen yet", "agentes: nenhum visto ainda";
    StatusAgent: "agent {name} at {site}: last heartbeat {time} ({seconds} s ago)",
        "agente {name} em {site}: último sinal {time} (há {seconds} s)";

    HelpUsage: "Usage:", "Uso:";
    HelpCommands: "Commands:", "Comandos:";
    HelpOptions: "Options:", "Opções:";
}

/// `--help` in Portuguese: command descriptions (`about:NAME`) and flag help (by clap
/// argument id; the same id means the same thing in every command). Whatever is missing
/// here stays in English.
pub const HELP_PT: &[(&str, &str)] = &[
    // `catraca simulate`: keyed `simulate:<flag>`, since some of its flags share a name
    // with `enroll`'s and mean something else (`--devices` is a count here).
    ("about:bench", "Mede cadastros contra catracas simuladas e imprime uma tabela de números."),
    ("bench:quick", "Tamanhos mínimos (alguns segundos ao todo): confere que o benchmark funciona, não mede nada."),
    ("bench:only", "Só estes grupos de cargas, separados por vírgula: W1, W2, W3, startup, W4, TLS, sites, sim."),
    ("bench:people", "Pessoas da maior carga de escala (W2 roda também um décimo e um centésimo, W3 a roda com tudo no cache). Padrão 100.000, em 10 dispositivos: 1.000.000 de pares."),
    ("bench:json", "Imprime as linhas como JSON em vez da tabela."),
    ("bench:launcher", "Interno: serve de pequeno processo que inicia e mede os filhos."),
    ("simulate:devices", "Quantos dispositivos simular, chamados catraca-1, catraca-2, ...: N dispositivos de --kind, ou uma frota mista como controlid:3,hikvision:2,intelbras:2."),
    ("simulate:reader", "Como o leitor de cartões de cada dispositivo escreve um cartão: um formato de cartão (controlid, w26, w26-hex, decimal, hex, opcionalmente :TAMANHO), w26-swapped ou side-by-side; padrão: como os leitores de cada fabricante."),
    ("simulate:log_swipes", "Imprime cada cartão passado (POST /__sim/swipe?card=F,N num dispositivo) como liberado ou recusado."),
    ("simulate:kind", "A família dos dispositivos quando --devices é um número."),
    ("simulate:capacity", "Hikvision e Intelbras: quantas pessoas um dispositivo guarda no máximo (o Hikvision então responde userExceedLimit)."),
    ("simulate:port", "Primeira porta: os dispositivos escutam em P, P+1, ...; 0 escolhe portas livres."),
    ("simulate:bind", "Endereço em que escutar."),
    ("simulate:latency_ms", "Latência somada a cada requisição, em milissegundos."),
    ("simulate:per_object_latency_ms", "Latência extra por objeto além do primeiro numa gravação, e a cada 100 linhas lidas, em milissegundos."),
    ("simulate:max_in_flight", "No máximo C requisições atendidas ao mesmo tempo por dispositivo; as demais são recusadas como diz --overload."),
    ("simulate:overload", "Como um dispositivo recusa requisições além de --max-in-flight."),
    ("simulate:fail_503", "Fração das requisições respondidas com 503 antes de processar (0 a 1)."),
    ("simulate:fail_reset", "Fração das requisições cuja conexão é derrubada (0 a 1)."),
    ("simulate:fail_hang", "Fração das requisições deixadas sem resposta por --hang-secs, depois fechadas (0 a 1)."),
    ("simulate:fail_garbage", "Fração das requisições respondidas com 200 e um corpo que não é JSON (0 a 1)."),
    ("simulate:fail_silent_drop", "Fração das pessoas criadas que o dispositivo confirma mas não guarda (0 a 1)."),
    ("simulate:faults_after_write", "Quedas, travamentos e lixo acontecem depois de a gravação ser aplicada, e a resposta se perde."),
    ("simulate:hang_secs", "Quanto tempo uma requisição travada fica em silêncio antes de a conexão ser fechada, em segundos."),
    ("simulate:session_expiry", "Uma sessão deixa de valer depois de N requisições feitas com ela."),
    ("simulate:nonce_uses", "Perfil de firmware Hikvision e Intelbras: o (N+1)º uso de um nonce Digest recebe 401 com novo desafio e sem stale (um DS-K1T342MWX: 2)."),
    ("simulate:firmware", "Perfil de firmware Intelbras: 2 (listas key=value, sem startFind) ou 3 (JSON, startFind/doFind/stopFind, sem lista sem filtro); ambos respondem Bad Request sem detalhes e ignoram uma atualização que apaga CardNo. Padrão: a API documentada."),
    ("simulate:name_max", "Perfil de firmware Hikvision: o máximo de bytes de nome que um aparelho aceita (name.@max das capacidades; nomes maiores são recusados com badJsonContent)."),
    ("simulate:employee_digits_only", "Perfil de firmware Hikvision: employeeNo só com dígitos (characterType number)."),
    ("simulate:legacy_delete", "Perfil de firmware Hikvision: sem UserInfoDetail/Delete, só o UserInfo/Delete antigo."),
    ("simulate:id_lists_only", "Perfil de firmware Control iD: uma lista no where só vale em colunas id (uma lista em registration é recusada com 400, como só listas de id são documentadas)."),
    ("simulate:faces", "Os dispositivos são modelos faciais: aceitam fotos de rosto (as chamadas e os limites de cada família); sem isso são modelos de cartão que recusam toda chamada de rosto."),
    ("simulate:face_ms", "Tempo que um dispositivo facial leva para modelar cada foto de uma chamada de rosto, em milissegundos."),
    ("simulate:non_facial", "Com --faces, o dispositivo I (a partir de 1) é mesmo assim um modelo de cartão; repita para vários."),
    ("simulate:controlid_faces", "Firmware de rosto Control iD: stock (como documentado), old (sem get_timestamp nem users.image_timestamp) ou oem (HID Amico: PNG recusado com 400)."),
    ("simulate:no_face_setup", "Firmware de rosto Hikvision: sem FDSetUp (404 notSupport, sem setUp nas capacidades): rostos são adicionados com FaceDataRecord, nunca substituídos."),
    ("simulate:no_fdsearch_delete", "Firmware de rosto Hikvision: FDSearch/Delete responde statusCode 6 Invalid Content e só FDDelete remove um rosto, como num DS-K1T341AMF."),
    ("simulate:face_capacity", "Hikvision: quantos rostos a biblioteca de um aparelho guarda (FDRecordDataMaxNum); além disso o envio é recusado com exceedMaxFaceNumber."),
    ("simulate:no_access_face", "Firmware de rosto Intelbras: sem AccessFace.cgi (501 Not Implemented): os rostos vão um a um por FaceInfoManager.cgi?action=add|update."),
    ("simulate:infrared_library", "Firmware de rosto Hikvision: FDLib lista também uma biblioteca infraredFD (FDID 2), primeiro, como um DS-K1T342MFWX-E1; os rostos vão para blackFD (FDID 1) do mesmo jeito."),
    ("simulate:intelbras_max_photo_kb", "Intelbras: a maior foto de rosto aceita, em KB (1.024 bytes); além disso FailCode 286064923 (um Dahua ASI: 75)."),
    ("simulate:deny_command", "Control iD: a conta não pode rodar COMANDO (ex.: destroy_objects): 401 Invalid access level, mesmo depois de um login novo; repita para vários."),
    ("trace_http", "Grava cada requisição aos aparelhos e sua resposta em ARQUIVO, uma linha JSON cada (sem sessões, Authorization, cookies e senhas; corpos cortados em 64 KB), para anexar a um relato de problema."),
    ("simulate:no_capabilities", "Perfil de firmware Hikvision: sem as chamadas de capacidades (404), como em firmware antigo."),
    ("simulate:exhausted_without_challenge", "Perfil de firmware Hikvision e Intelbras: o 401 que recusa um nonce gasto (--nonce-uses) vem sem WWW-Authenticate, como um terminal o envia."),
    ("simulate:offer_basic", "Hikvision e Intelbras: os 401 oferecem Basic antes de Digest, como um aparelho em \"digest/basic\" (credenciais Basic são logins recusados)."),
    ("simulate:down", "O dispositivo I (a partir de 1) está fora do ar: suas conexões são derrubadas; repita para vários."),
    ("simulate:seed", "Semente do sorteio de falhas e dos tokens de sessão; o dispositivo I usa semente + I - 1."),
    ("simulate:clock_offset_secs", "Segundos que os relógios dos dispositivos estão adiantados em relação a esta máquina (negativo: atrasados)."),
    ("simulate:login", "Login que os dispositivos aceitam; a senha vem de CATRACA_SIM_PASSWORD, senão admin."),
    ("simulate:tls", "Serve HTTPS, cada dispositivo com um certificado autoassinado próprio (a impressão digital é impressa, para tls_fingerprint)."),
    ("simulate:tls_authority", "Serve HTTPS com certificados emitidos por uma nova autoridade do local, cujo certificado é gravado em ARQUIVO (para catraca --ca-cert ARQUIVO)."),
    ("about:catraca", "Cadastra cada participante em cada catraca de controle de acesso, rápido e uma única vez."),
    ("about:enroll", "Coloca cada participante de um CSV em cada dispositivo."),
    ("about:plan", "Mostra o que `enroll` faria em cada dispositivo (lê os dispositivos, não grava nada)."),
    ("about:remove", "Tira de cada dispositivo as pessoas de um CSV (com seus cartões e vínculos de grupo); basta uma coluna de matrículas."),
    ("about:demo", "Cadastra os 100 participantes de exemplo em 5 catracas simuladas, duas vezes."),
    ("about:simulate", "Serve catracas Control iD simuladas no loopback (para testes e ensaios)."),
    ("about:check", "Verificação prévia: contata cada dispositivo e diz se está pronto (saída 0) ou não (1)."),
    ("about:learn-card", "Lê um cartão passado num dispositivo e diz qual card_format escreve os cartões como o leitor dele (não grava nada no dispositivo)."),
    ("learn-card:device", "O dispositivo a ler: seu nome em --devices, ou a URL de um dispositivo como hikvision+http://10.0.0.6 quando não há arquivo de dispositivos."),
    ("learn-card:devices", "Um arquivo TOML com tabelas [[device]], como para `catraca enroll`."),
    ("learn-card:card", "O número impresso no cartão que você vai passar (`F,N` ou um número): learn-card diz então qual card_format (e card_pad) o transforma no que o dispositivo leu."),
    ("learn-card:timeout", "Quanto esperar pelo cartão (ex.: 60s, 2m)."),
    ("learn-card:json", "Imprime o resultado em JSON na saída padrão em vez de texto."),
    ("about:completions", "Imprime o script de completação do shell (bash, zsh ou fish)."),
    ("about:help", "Mostra esta mensagem ou a ajuda do subcomando indicado."),
    ("verbose", "Mais saída: -v mostra uma linha por pessoa-dispositivo, -vv acrescenta logs de depuração."),
    ("quiet", "Só o relatório final e os erros: sem progresso, sem avisos."),
    ("lang", "Idioma das mensagens: en ou pt-BR (padrão: LC_ALL / LC_MESSAGES / LANG)."),
    ("config", "Arquivo de configuração com padrões (threads, cache, dispositivos...); padrão: ./catraca.toml se existir."),
    ("users", "O CSV de participantes (`-` lê a entrada padrão). Colunas: matricula/registration, nome/name, e opcionais cartao/card, inicio/begin, fim/end, grupo/group, foto/photo; separadas por `,` ou `;`."),
    ("devices", "Um arquivo TOML com tabelas [[device]] (name, url, kind, max_in_flight, login, password_env, tls_fingerprint, card_format, card_pad, faces)."),
    ("device_urls", "A URL de um dispositivo, p.ex. http://10.0.0.5 ou https://10.0.0.5 (repetível; soma-se a --devices)."),
    ("cache", "Onde os resultados ficam guardados: `embedded` (arquivo local, veja --cache-path), `none` ou uma URL `redis://`. Senão CATRACA_CACHE, depois REDIS_URL."),
    ("cache_path", "O arquivo do cache embutido."),
    ("insecure_tls", "Aceita qualquer certificado de dispositivos https que não fixam nenhum (tls_fingerprint): o tráfego é cifrado, mas os dispositivos não são autenticados. Prefira fixar."),
    ("ca_cert", "Confia também nas autoridades certificadoras deste arquivo PEM para dispositivos https (a autoridade do próprio local), além das do sistema."),
    ("skip_cache", "Não confia no cache para pular pares (os resultados ainda são gravados nele)."),
    ("report", "Grava também o relatório final em JSON em ARQUIVO."),
    ("json", "Imprime o resultado em JSON na saída padrão em vez do resumo."),
    ("failed", "Grava em ARQUIVO as pessoas cujos pares falharam, num CSV que --users relê."),
    ("max_failures", "Para cedo (saída 1, relatório gravado) quando mais de N pares, ou P% de todos, falharem."),
    ("photos", "Uma pasta de fotos de rosto nomeadas pela matrícula: DIR/<matricula>.jpg, .jpeg ou .png. A coluna foto/photo/face do CSV vence onde nomeia um arquivo."),
    ("photo_fit", "Como as fotos são preparadas: `canonical` (padrão: orientação EXIF aplicada, metadados removidos, retrato 3:4, no máximo 480x640, JPEG baseline 4:2:0 abaixo de 70 KB, que toda família aceita) ou `none` (cada arquivo enviado exatamente como está)."),
    ("photo_match", "Control iD: recusa uma foto cujo rosto já está cadastrado para outra pessoa (mais lento; desligado por padrão, como o fabricante recomenda para cadastro em massa)."),
    ("prune", "Remove também de cada dispositivo as pessoas que o catraca cadastrou e que o CSV não lista mais (com cartões e vínculos de grupo). Quem foi cadastrado por outro sistema fica (veja --prune-unmanaged)."),
    ("prune_unmanaged", "Com --prune: remove todos que o CSV não lista, seja quem for que os cadastrou."),
    ("max_remove", "Com --prune: recusa a execução inteira (saída 2, nada removido) quando um dispositivo perderia mais de N pessoas ou P% delas. 10%: um CSV errado ou truncado não pode esvaziar um dispositivo."),
    ("expire", "Remove as pessoas cujo `fim` já passou, em vez de cadastrá-las."),
    ("verify", "Relê uma amostra aleatória de P% dos pares gravados nesta execução e aponta os que o dispositivo não guardou (há aparelhos que respondem OK sem gravar)."),
    ("reconcile", "Ignora o cache, lê cada par nos dispositivos e leva dispositivos e cache ao que o CSV diz."),
    ("dashboard", "Serve um painel ao vivo (e /api/status, /metrics) durante a execução, em ENDEREÇO: PORTA ou IP:PORTA; só PORTA (ou nenhum valor: 8787) escuta apenas no loopback."),
    ("dashboard_linger", "Mantém o painel no ar por este tempo depois do fim (p.ex. 60s, 5m; Ctrl-C encerra)."),
    ("metrics_file", "Grava as métricas finais no formato texto do Prometheus em ARQUIVO (para o textfile collector do node_exporter)."),
    ("events", "Acrescenta em ARQUIVO uma linha JSON por par concluído (hora, dispositivo, hash da matrícula, resultado, tentativas, latência, erro)."),
    ("threads", "Threads de trabalho. 10, como o sistema que o catraca substitui."),
    ("sequential", "Sem pool: um trabalho depois do outro, numa thread só."),
    ("max_in_flight", "Requisições simultâneas por dispositivo, salvo indicação no arquivo de dispositivos. 2: os servidores web desses aparelhos derrubam conexões em rajadas."),
    ("rate", "Requisições por segundo por dispositivo, salvo indicação no arquivo de dispositivos (padrão: sem limite)."),
    ("batch_size", "Pessoas por requisição de criação. 100; 1 envia uma pessoa por requisição, como o sistema antigo."),
    ("timeout", "Segundos de espera pela resposta de um dispositivo a uma requisição."),
    ("connect_timeout", "Segundos de espera por uma conexão TCP com um dispositivo."),
    ("retries", "Novas tentativas de uma requisição que falhou por motivo passageiro (timeout, reset, 503)."),
    ("latency_ms", "Latência simulada de cada dispositivo, em milissegundos."),
    ("shell", "O shell: bash, zsh ou fish."),
    ("about:publish", "Escritório central: divide um CSV de participantes em trabalhos por local no Redis central (--queue), para os agentes de cada local."),
    ("about:agent", "Na máquina de um local: faz os trabalhos desse local a partir do Redis central, com o arquivo de dispositivos do próprio local (URLs e senhas ficam no local)."),
    ("about:status", "Escritório central: o relatório de uma execução de muitos locais, por dispositivo, por local, e os agentes vistos (--wait até terminar)."),
    ("queue", "O Redis central que guarda trabalhos e resultados: redis://[[USUÁRIO]:SENHA@]HOST[:PORTA][/DB], ou rediss://... para TLS. Senão CATRACA_QUEUE. Mostrado só com a senha oculta."),
    ("queue_prefix", "A primeira parte de cada chave (`catraca:{local}:jobs`): várias frotas, ou testes, podem dividir um Redis com prefixos diferentes."),
    ("publish:devices", "O arquivo central da frota: uma tabela [[device]] por dispositivo com nome e local (site), e kind, card_format quando não os padrões; sem URL nem senha."),
    ("job_size", "Pessoas por trabalho, no máximo 999 (o limite de uma consulta do dispositivo): trabalhos menores espalham o trabalho de um local por mais agentes."),
    ("agent:devices", "O arquivo de dispositivos deste local, com URLs e credenciais, como para `catraca enroll`."),
    ("site", "O local deste agente: ele faz os trabalhos de `{prefixo}:{local}:jobs`."),
    ("name", "O nome deste agente entre os agentes do local (seu nome de consumidor). Padrão: o nome da máquina e o id do processo."),
    ("claim_after", "Assume um trabalho que outro agente do local segura há este tempo sem terminar (ele morreu): 60s por padrão (ex.: 30s, 2m)."),
    ("jobs", "Trabalhos que este agente roda ao mesmo tempo. Padrão: um por dispositivo do local, para uma máquina manter todos ocupados (um dispositivo nunca roda dois trabalhos ao mesmo tempo, sejam quantos forem os agentes)."),
    ("publish:max_remove", "Com --prune: um dispositivo que perderia mais de N pessoas ou P% delas não perde ninguém (seu trabalho de poda falha, com o motivo). 10%: um CSV errado ou truncado não pode esvaziar um dispositivo."),
    ("publish:prune", "Remove também de cada dispositivo as pessoas que o catraca cadastrou e que o CSV não lista mais: um trabalho de poda por dispositivo, com as matrículas da lista inteira."),
    ("agent:dashboard", "Serve o painel ao vivo deste agente (e /api/status, /metrics) em ENDEREÇO: PORTA ou IP:PORTA; só PORTA (ou nenhum valor: 8787) escuta apenas no loopback. Soma os trabalhos que este agente terminou; requisições, latência e disjuntor de cada dispositivo são ao vivo."),
    ("agent:metrics_file", "Grava as métricas deste agente no formato texto do Prometheus em ARQUIVO depois de cada trabalho e ao sair (para o textfile collector do node_exporter), substituindo-o inteiro."),
    ("status:dashboard", "Serve o painel ao vivo da frota inteira (e /api/status, /metrics) em ENDEREÇO, uma linha por local que se abre em seus dispositivos, enquanto espera a execução (implica --wait). Só PORTA (ou nenhum valor: 8787) escuta apenas no loopback."),
    ("once", "Sai quando o stream do local não tem nada pendente, com o status de saída do enroll."),
    ("run", "A execução a mostrar (o id que publish imprimiu). Padrão: a última publicada."),
    ("wait", "Espera até cada trabalho da execução terminar, e sai como o enroll sairia."),
];

/// Examples and exit statuses shown after `--help`, in Portuguese.
pub const AFTER_HELP_PT: &str = "Exemplos:
  catraca demo
  catraca check --devices dispositivos.toml
  catraca learn-card --device portaria-3 --devices dispositivos.toml --card 43,3012
  catraca enroll --users participantes.csv --devices dispositivos.toml
  catraca enroll --users participantes.csv --devices dispositivos.toml --dashboard --events eventos.jsonl
  catraca plan --users participantes.csv --devices dispositivos.toml --prune
  catraca remove --users saindo.csv --devices dispositivos.toml
  cat participantes.csv | catraca enroll --users - --device http://10.0.0.5 --device http://10.0.0.6
  catraca simulate --devices 5 --port 8001 --latency-ms 50

Status de saída:
  0    cada pessoa está em cada dispositivo
  1    alguns pares pessoa-dispositivo falharam (listados no relatório)
  2    erro de uso, de configuração ou de entrada, ou um --prune acima de --max-remove:
       nada foi enviado a nenhum dispositivo
  130  interrompido (Ctrl-C ou SIGTERM): o relatório parcial foi impresso";

/// English fragments kept as `&'static str` elsewhere, and their Portuguese.
const FRAGMENTS: &[(&str, &str)] = &[
    ("is not a card number", "não é um número de cartão"),
    (
        "has a facility code larger than 4294967295",
        "tem um código de facility maior que 4294967295",
    ),
    (
        "has a card number larger than 4294967295",
        "tem um número de cartão maior que 4294967295",
    ),
    (
        "has an offset but no time of day",
        "tem deslocamento de UTC mas não tem hora",
    ),
    ("is not a date", "não é uma data"),
    (
        "has an offset from UTC that does not exist",
        "tem um deslocamento de UTC que não existe",
    ),
    (
        "has a year without four digits",
        "tem um ano sem quatro dígitos",
    ),
    ("is not a date and time", "não é uma data com hora"),
    (
        "a value with a comma in it must be in quotes, like a card \"123,45678\"",
        "um valor com vírgula deve estar entre aspas, como um cartão \"123,45678\"",
    ),
    (
        "look for a stray or missing ';' (a value with a ';' in it must be in quotes)",
        "procure um ';' a mais ou a menos (um valor com ';' deve estar entre aspas)",
    ),
    ("name", "um nome"),
    (
        "registration (the key on every device)",
        "uma matrícula (a chave em todos os dispositivos)",
    ),
];

/// `english` in the language in use (itself when the catalogue does not know it).
pub fn fragment(english: &'static str) -> &'static str {
    if !is_pt() {
        return english;
    }
    FRAGMENTS
        .iter()
        .find(|(en, _)| *en == english)
        .map_or(english, |(_, pt)| pt)
}

/// The message's template in the language in use, without placeholders filled.
pub fn t(msg: Msg) -> &'static str {
    msg.template(lang())
}

/// The message in the language in use, its `{name}` placeholders filled from `args`.
pub fn tr(msg: Msg, args: &[(&str, &dyn Display)]) -> String {
    fill(t(msg), args)
}

/// Fills `{name}` placeholders in one pass (a value holding `{x}` stays as it is).
pub fn fill(template: &str, args: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(&value.to_string()),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(template: &str) -> BTreeSet<&str> {
        template
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn both_languages_have_every_message_with_the_same_placeholders() {
        for msg in Msg::ALL {
            let (en, pt) = (msg.template(Lang::En), msg.template(Lang::PtBr));
            assert!(!en.is_empty() && !pt.is_empty(), "{msg:?}");
            assert_eq!(placeholders(en), placeholders(pt), "{msg:?}");
        }
    }

    #[test]
    fn the_locale_picks_the_language_in_posix_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Lang::from_env(&env(&[("LANG", "pt_BR.UTF-8")])), Lang::PtBr);
        assert_eq!(
            Lang::from_env(&env(&[("LANG", "pt_BR.UTF-8"), ("LC_ALL", "C")])),
            Lang::En
        );
        assert_eq!(
            Lang::from_env(&env(&[("LANG", "en_US.UTF-8"), ("LC_ALL", "pt_BR")])),
            Lang::PtBr
        );
        assert_eq!(Lang::from_env(&env(&[])), Lang::En);
        assert_eq!(Lang::parse("pt-BR"), Some(Lang::PtBr));
        assert_eq!(
            flag_value(
                &["catraca".into(), "--lang".into(), "pt-BR".into()],
                "--lang"
            ),
            Some("pt-BR".into())
        );
        assert_eq!(
            flag_value(&["--lang=en".into()], "--lang"),
            Some("en".into())
        );
    }

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(
            fill("{a} and {b} and {c}", &[("a", &"{b}"), ("b", &2)]),
            "{b} and 2 and {c}"
        );
    }
}
