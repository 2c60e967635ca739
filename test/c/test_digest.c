/*
 * test_digest.c — unit tests of MD5 and SHA-256 (src/lg_digest.c).
 *
 * Vectors:
 *   1. RFC 1321 Appendix A.5, the MD5 test suite (all seven strings).
 *   2. FIPS 180-2 Appendix B (SHA-256): "abc" (B.1), the 448-bit message (B.2), one million
 *      'a' (B.3), and the empty message; the 896-bit message of FIPS 180-2 §C.2 / the NIST
 *      example set. Their MD5s come from the table tool below.
 *   3. Every length 0..200 of a fixed byte pattern (data[k] = (k * 167 + 13) & 0xff): crosses
 *      every padding case (tails of 0..63 bytes, the one- and two-block paddings at 55/56 and
 *      119/120, whole blocks). Generated with Node's crypto (OpenSSL):
 *        node -e 'const c=require("crypto");const b=Buffer.alloc(200);
 *          for(let k=0;k<200;k++)b[k]=(k*167+13)&0xff;
 *          for(let n=0;n<=200;n++){const d=b.subarray(0,n);
 *            console.log(c.createHash("md5").update(d).digest("hex"),
 *                        c.createHash("sha256").update(d).digest("hex"))}'
 *   4. Alignment: the same bytes at every offset 0..7 of a buffer give the same digests; a
 *      NULL pointer with length 0 is the empty message; the input is not modified.
 */
#include "lg_test.h"
#include "../../src/lg_digest.c"

#include <stdlib.h>

/* Lower-case hex of a digest into out (2 * len + 1 bytes). */
static void to_hex(const uint8_t *d, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * len] = '\0';
}

static bool md5_is(const void *data, size_t len, const char *want)
{
    uint8_t d[LG_MD5_LEN];
    char hex[2 * LG_MD5_LEN + 1];
    lg_md5(data, len, d);
    to_hex(d, sizeof(d), hex);
    return strcmp(hex, want) == 0;
}

static bool sha256_is(const void *data, size_t len, const char *want)
{
    uint8_t d[LG_SHA256_LEN];
    char hex[2 * LG_SHA256_LEN + 1];
    lg_sha256(data, len, d);
    to_hex(d, sizeof(d), hex);
    return strcmp(hex, want) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* 1. RFC 1321 A.5.                                                                           */

LG_TEST(md5_rfc1321_suite)
{
    static const struct {
        const char *in, *md5;
    } rows[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890" /* 8 x "1234567890" */
         "1234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    for (size_t i = 0; i < LG_ARRAY_SIZE(rows); i++)
        CHECK_ROW(md5_is(rows[i].in, strlen(rows[i].in), rows[i].md5), rows[i].in);
}

/* ------------------------------------------------------------------------------------------ */
/* 2. FIPS 180-2.                                                                             */

static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg896[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
    "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

LG_TEST(sha256_fips180_vectors)
{
    CHECK(strlen(msg448) * 8 == 448 && strlen(msg896) * 8 == 896);
    CHECK(sha256_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(sha256_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(sha256_is(msg448, strlen(msg448),
                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    CHECK(sha256_is(msg896, strlen(msg896),
                    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));
    /* The same messages through MD5 (values from Node's crypto). */
    CHECK(md5_is(msg448, strlen(msg448), "8215ef0796a20bcaaae116d3876c664a"));
    CHECK(md5_is(msg896, strlen(msg896), "03dd8807a93175fb062dfb55dc7d359c"));
}

LG_TEST(one_million_a)
{
    size_t n = 1000000;
    char *m = malloc(n);
    CHECK(m != NULL);
    memset(m, 'a', n);
    bool sha = sha256_is(m, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    bool md5 = md5_is(m, n, "7707d6ae4e027c70eea2a935c2296f21");
    free(m);
    CHECK(sha);
    CHECK(md5);
}

/* ------------------------------------------------------------------------------------------ */
/* 3. Lengths 0..200.                                                                         */

#define PATTERN_MAX 200 /* bytes: the longest message of the length table */

static void pattern(uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p[k] = (uint8_t)((k * 167 + 13) & 0xff);
}

/* Row n: MD5 and SHA-256 of the first n bytes of the pattern. */
static const struct {
    const char *md5, *sha256;
} length_rows[PATTERN_MAX + 1] = {
    {"d41d8cd98f00b204e9800998ecf8427e",
     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"dcb9be2f604e5df91deb9659bed4748d",
     "9d1e0e2d9459d06523ad13e28a4093c2316baafe7aec5b25f30eba2e113599c4"},
    {"589595309910f586045bee15bd36c36c",
     "ac4150fe5c10c52db000a2b5c8ec38a06b5f3066bb861429caeea8dd0192a1d9"},
    {"5edefab10a615a1d2801e8e5f2387821",
     "13c425a746ac9e72be4760dd13b156260d7ad6ea6b8750fbf1c7b0d5a484b852"},
    {"8ecb774932d0416a96c3912632511af4",
     "3ca50c11609595b64693be32e58b46eb35c81dbce77fef6162e9b675e54c7619"},
    {"24359b685a018b7d8b0c180e3f73be84",
     "0b2efc8144bb0d825a1d8afae908d957ee1cb1a9a933c55a1e121a3d33c33ac8"},
    {"506e7deb85d0e9b2d036854f7fb436a0",
     "39ecf6ce33e1f50d1fed7ba6dc6fdb074ab1e0362518cb884a668459e853bbde"},
    {"283ce5a11c9a074ea99be04cc7b6d12b",
     "c203a078ad61ea701fe3b59157795377099530c374bca00d8515198b64e75dff"},
    {"bf868b178f02947e9c5f0065b9344c27",
     "f0c621cb705bcc7b4c6b940d4aee13a481804f6ff20640635a33a7dc613f8111"},
    {"56bf545c4682452115923a1c007f607d",
     "d7d49018f6f0dafcb068f12e57f8dd48a036e83c06553ded4f99e65ade28e6e4"},
    {"e420a73499fcfe8d817097dd52450ecb",
     "11e88db1776db4313e63084759d44e258f05df254f515284beb2ae54530b1c76"},
    {"6d4db303e0d10b826786cc1313f7ac67",
     "a637bab7c64f733fbe04214b1db659eba54432145e4f50ffe32ce4c61b88c812"},
    {"9459ea418417f31fbf23120a2f3bdab1",
     "41f24dd1b6bba8a99eead9baecb2fbfcb2c1212e206512ee30c4379b1677ba54"},
    {"7178874fce2e60980533cdbe2827fd39",
     "632debdecc64eea9a591d4b80f3ba0eeaac4561a134ff2cacc1f21fbff3accce"},
    {"44742913c4692f55f94a1c2acff3866a",
     "aab4ab03aec228ce956365e7ebf30ee1c9beb56830c676fd5a50d2743e1946d6"},
    {"50e663f3bc5ef09be11f3e110395536c",
     "4da00c498b517755271cea35ec91c68544180ae1b4b91be33eaa4719721d71b1"},
    {"34e5beb8f251b60f785f4e8eebaf101a",
     "ce141eff2bce3c665db6c8cf602246015a6786ba707d61430d3b1cf43ee9e824"},
    {"b9ad021d1b82f07231c57ae87e2b3759",
     "3c8c595a75bc2ec015abec1c214614e773195b21a8fdcc46603588f5d59414dd"},
    {"8b265f2c0484e80a161ed17dc76635db",
     "38bbd99118257174a3f29328f8fb0834a262533cc6d27a5f11a2de21e581a128"},
    {"5086be4f8adee509526228666a4c90f8",
     "cc0ee2549211b6ee88a76d03cc97bd62afccda188c33569f98b396da070b033a"},
    {"bc5dd1dfca9fd479f2a0d1bfb5e8dfda",
     "5593f50c3c902a4dbb934960e027758769dd4991ed68c8c5a0d9ce77334d1704"},
    {"1a57bccb328dd00bd1bc2b51482f361e",
     "e447b286f8484f85f19ac5b904b911b9f9c645da6046fc37b79fd27a3df4102a"},
    {"f9a11596bb173f9066eca3783691609f",
     "83a91f7f5a6f097539301377812089cb4d61233adbf92761df3a3ea1f7dbc7ca"},
    {"75fe74ae1decc06900b9e7a649007098",
     "0e9ccc7de0cc29a44de4ca37a7be4eae55e1dc03e9d59c1a946cba9519f4d4c2"},
    {"32803dd775cad2de5d2ef1502a383a62",
     "ee174dce0285a780d55862217b5dbe78a32f155a635b8e306f2888463f2c7122"},
    {"24efe5a3cb49c47adacab49e70673b26",
     "f38e6cf0e6c93b00b0d2efbee8cc5e012a24b5393c93b28aeb41fe026ef9ef6e"},
    {"5e309ca2075154b284b007fc3d36f8f0",
     "1d7ab78ba63d8348dbadb2cceabbda047a16ee3563df520b385f3fb8ff36a22b"},
    {"db2195191fa21e1ecf42ac70099cd499",
     "1ab69f9d5f1b275ecdf4dcbd97d665fc91b77b1d65c724b99899b70384e2a635"},
    {"0a02ab9cb033368a89cef8ed58b88582",
     "86447568d1bd278d5f7df52ff0a9539e974e83427b3c35f59b9caea583594074"},
    {"e10e12dacc3e222cea0e69209a30e979",
     "410e485041e4b9216645fe1bd729c0ddec650f4689879c2ab9c084ddb87f822a"},
    {"96c457c2d35699639e938d8e8bc1f51c",
     "cbf2ac637e659072e0af3d58386345fe1263378ebbd706058b78f7c14b4efc31"},
    {"35cb80b09895deed3333b6a1c6fb0ac1",
     "e0f1595aeb4ed77b4c5f5c85c81096fa428fca936041d094a0cc2bbada7b9ba9"},
    {"ccb3a7ad5ac7c9bb64ed96be021397cc",
     "a0005a1a507e6d6488e4d36992e99f7c693e5c1b68018f8488149346a4a06b23"},
    {"db20660935290e3dc730a824f374ebdf",
     "f456e3e94bd025e42cf609cab6be7081fea007870beb80fe3433c2236ce8a511"},
    {"a2bd47363a3c09edb8e968470d73ba54",
     "89dbffe8618914e059fbec6b2dac81aa9921beac0aa8c61620fe3819171277b1"},
    {"aa2425e942fa9763c80ea8204b8071f3",
     "601456984104fd2b95f368c97a4936fd62ce3638f94116f9013909ab890b11b7"},
    {"719716533e75a0825cb5cc96b49b265d",
     "f123e3c628c9e8f2b32cc9a61fcbbedeaed30760f3b13ea02db90fe213f3758b"},
    {"4f4f2fb3c8a3f6f06e1cc79530348ef7",
     "052bf9f3fbbd7f7def7a3149e946e368288a08951f98df4f50d60d9918b3c277"},
    {"368cd1aa89527e71064aaf3067ed1355",
     "94060274052bf8abfdc0fe7c27ddf0d5ec940c9e96ed2af9d788e4306caf1917"},
    {"e5fc2d424e55eedc162eb0a3a00166a0",
     "2108937055f8c731588754324a99f0456a848eb67727637343615c2fcad8ed5f"},
    {"6943c47f5eb83c1a1b9988992cf2283f",
     "0c8cd99317c4d88f28731be79805326d5329ecd70ce8cae25ca5496cd890d072"},
    {"82e608ac28663673be2b0805fdae7a46",
     "8657f654dacb4974fc9d6177db6c34e9c960f0218594fbda22b7c04664a31786"},
    {"c3a36a8f186784fe66ac7d08fdaabbb6",
     "f08e4c43738ffd5a4a8db2864f2b66f8bd622a6fe6b1b4bcfe492c8d63312dcd"},
    {"79721182bfb6d38421b00e29ed1d1157",
     "1cb366de1b211835491747c83902fee8b672e3fc38c72c40cba94acf88c0a0ac"},
    {"9dd1b7df516eca632f0296822f37001a",
     "6ebba9acc1d3690781c9e6ffd8b7693e7cf72205abe64a5bf45734cbbcf34433"},
    {"91cca0cc517ca6ad03333e517109b358",
     "943b0f14ab70d50d5679e23731b42d53c17e9aeb3fae8cda13e01b9052855adb"},
    {"89ef7d24656ee401b356b40531908b8f",
     "28edfb4668ab45aa6bc8a2f970fbe675b6f1c3164aa8bd514d486ad85cd91953"},
    {"0cd0b1b1623ac02ce203232f5ecd0f1a",
     "1a74f440e56873d224eb8ff11b32b97f8b94448e91c3b2b3f36d21f75ad440c6"},
    {"2c76852ea3a7a4b73a2940a7c2d196f1",
     "3a1f1b38b18f2bccf02f7a11efca31133a35a3ddade893968bc0ba63f7267912"},
    {"d62409e4c5162f63c8d4f237fbdbf8ab",
     "66de5aab0108bf5a809e4c8689d0aeb2a9e37fe4b7acaaa579237d156d4ee4ef"},
    {"b034149ff86ca1563db4ef080a1b2893",
     "4c55db8015b7e54ff597723794182657d374ab4a0bdd2ea9fced3a37ba54effc"},
    {"97dc095f44bb2191d5c66bb283381c7c",
     "1a6bd48e3c37aff32bbb222c15e5db94a6c12794c61316a529d34b1f6c6c87a2"},
    {"29fd33a651c4f758220f5ce3012c896d",
     "2afd2a622fe475e29665996b53d8b237b080917b57eabfe6c03c8cb6a5fb2571"},
    {"285c0acfaa8741e97ff0ab07198ac89c",
     "b5c404c4e96dcc358bc190e6478ba4b0cb9a218a6852ec59e9337d603789d0e2"},
    {"48731ee500d86f13f79dda1746dedb6c",
     "5d17705b7f0df5e22eddad8bcefe52e95a9d1006bfae79e828c3c1329d0217ea"},
    {"63f2b43e0234f014ba086687f7ec7e4d",
     "b2ca0adc388a66d3a5a7f6541239331d5a867eede554e11262241271faaf36c5"},
    {"129a7df2069f6dcc689cbeed82142a42",
     "3768eff44f1df02704a832cf708935fbed9bb74d0714fbe75454c266c4e12856"},
    {"141a2b37feaa5343465412f413f5569a",
     "a35b6298adfbc5ec16dc51a8d52145daa2a68f1d66e837d85bed6783d874c5cb"},
    {"ba8a7096721661f6f91e051d66cf8214",
     "e0f4469743052c88f3077afc03c639fa9a953d8fa6d73afbdd355b9bab908aa8"},
    {"3d21933592e2b9fd2b8a6c58aca26b9a",
     "5f7a47400ea5e41bd7c31682cd717ff82e5024bbb1350553d1f0f22e40b8dc45"},
    {"1d5e8b7bea64dc272957f637a3b468b6",
     "f867cac02787eef84fbc9e705a1c5ad99532170fc2006309e3904838f814f33d"},
    {"af26bd138c0808f055a111636ca217c8",
     "66ca6894dac197b079fdf27dd6d53429720254a01a165c914595fb1cd2bec12a"},
    {"b66ce7bc5b462017b60072ef2310c27a",
     "0d3b08f701d8231d3809662ee50118ebd0c6591a6578bf660e02decf7bf93c52"},
    {"95ae047ff945b6702ed7bd87e7ccd08d",
     "dc06ea9e456da9f9fc2276564018231c36196ff7745bf505fd7f503aec5c67fd"},
    {"0741d4196478884c19bf239ab5442e2f",
     "b68fe543b0b5a544e32eb08712e697bfcd3a3cb491563c3b1cba112d378f4bdb"},
    {"913e0b1e4763382ffb6125227bb42e56",
     "587cdb9ad9be371721f2f84a84eb09f2b698ec19bbe2d7c222179996547a04a6"},
    {"369398c21fe28e730693ae07152cab5b",
     "df8c880195744c9379ddc11b6a7862469de5913621c2f4231ce208a7685ffb22"},
    {"5aa67d773678032b512bffff6f3881e5",
     "c24eda61aa3d598e084a47920c97dddae00d5315ac86f7f466a3f7fd9a6a77c0"},
    {"0652ca5175bd27d621b84bcb42c0332a",
     "d4530dae4bbb58fe1a455503b20d1b774de4235a67a5e7367fe7e78bb960c242"},
    {"d1595688abe580f814aa310eac8514fe",
     "66166998f76d81c8eded72e93ffe937b12023eb5fe5b1c984f8da418ecfc3a38"},
    {"b8760d060056de8acccd8e0355647a7a",
     "88ca792ead0e03d0e594f96716cdf09eb36a10f7880c93ba878e32142896daf3"},
    {"c921d1541d00b039e4a8b75033c05c14",
     "7df0a7cab65c44c253f1b47596cf0b255b780d3f309e5d74f7e851eb49e2810e"},
    {"2ba2917ddfb8bd7f82958ef7de6913fe",
     "e66e9c2d98c5b4407b89687d74ad4878f789c753548c3403237f786fc117e583"},
    {"f8b0891dbfa84fea60bdab3036127252",
     "2afc27ea6df12b6b7f717d257cd65a1a3381e546d9694aaa98abfce2b029cf84"},
    {"432013a7cf1c14ff572d44493afbe549",
     "306fbbd71fb0d6c7a5a1bf9f9ed245c88d94b7253797c18f3dfbf744dd6036cf"},
    {"b9abacd491e18b58dcbaf62f5d965edf",
     "bdc304eef30db25723fa15e7d600214143d2075b25eef8b7b6863841277141e4"},
    {"b8dfadf2495a27a570efaeb2240d10dc",
     "e22a2503dde5a329f6840ab9cd6a1daf8b181b0798368f0a756eac0e4ab50ae6"},
    {"786ef19365edc01bfd9de77ec0c20a8a",
     "dc4c20b498847eee6e7735981e4ad9585856d089b8030e9cb87339110990d08a"},
    {"d089fec29d6d2b9669b041d02f5614d6",
     "15bc2000b78806bcfeacafa34c9a617e17f8dd85d5b99917d49a8d02ca9b03c2"},
    {"8f121001be072f2b119bf85fa5e5a4c8",
     "5c41256678a6d3d0dbd72b7ab4158b69915bfaf9a330700a352946fd87ef5efc"},
    {"7e3d3f81bf6a43c56cf35e3e5a8349cb",
     "97a27d9afdd01a62d2991ceb24e5b7e0f7edf6a31b9b34b75cb24cacec43515d"},
    {"4b703220b85daac17079bffcca8071e3",
     "22f7ee5eb0f6305f5266552dd8381bc25694b79d1f8c622127dbf81e9d59ba2d"},
    {"84481ef2820eaa087e82d3642f2d0fb7",
     "3c4c6fe194f4062d9c6b3493d4927b022dd43f23541fda8c2d986e59d4680b05"},
    {"9b8ada3eb6d875a00957c59db2af31cc",
     "9a942915ca10718333b6b0ad0a4e3c8417498bae7362101e09db15cacd9ef311"},
    {"b4d9aad3cbaddae6f4fae9c6fb2a6abb",
     "1ff21fe7a5d5da9e4843392e6c96ee36f9ddb6c236b7e06e313ebe9e4dd9c2ae"},
    {"5a63d9f88a083e6b7053b3736c21ea20",
     "05dac20a2256458df82332da1a275ee80ed2a8128775a57e6fd0ffd143ce67f2"},
    {"2bee3c9dc89f4043ba3ed9d60a971831",
     "1ac0a62e0c7175af56160d6392380e9c0c75c2b58c7835eaa7d45b7a4b2941f7"},
    {"d3ba12dd5222da9704d09b89d824b2b8",
     "cf1220656f4d51ceb0a0502269606461fd7fe17817ee7562c395ba2e1b07e8fb"},
    {"0abea6f55d79f0424b00513f253a8397",
     "10c296217362b5fe1604277f178f2c426a56ab0629059c499ffc788df9ef6914"},
    {"a0d008ae50b9b37aa21b23e65920062d",
     "8385a09e2aec27c47c64fdeadb08e4332e3584de26ae68262b828776f41748fa"},
    {"37d65ea620f5ee9df76378366cfd8d67",
     "a90b76932b2f068503c284088ed83654cdef6051393cfa86d89d764e2f2580c7"},
    {"0df79b7f92ecfdff272d2a2ff8042d88",
     "8ed0c4f28e1ea7c20d9175afc572ef07ec2e579c52032d76e3a13e8d5f5d6cbb"},
    {"ce5df582faced08a3a1875322f45d762",
     "49e43de8ceac8456b21151c126985ef649d652b378eb7adde52bf4bf714f5365"},
    {"1209a614baa32e92d916c003fa44c38a",
     "bc86ffb3a9f146650a47c0a21bac10ef5d234a4207151cb06e403c176b91caf4"},
    {"093c33c463e9dad6b9b4c6fd63051b8e",
     "a4fd5b9bb2b9dc8a264b01c202ff3793542a4a30e47fa0f2d21bd27b0f3d4473"},
    {"bf9ecd5ebc976818a9b18227dff25548",
     "7af12630cc450bb78da210f22014963796e4e8c36d2c310ad48c4026e3cb1a2c"},
    {"e6abd4c6dd06e6a2d733bab9af5c91ba",
     "b0335ebe89f2fc1153db3ee9f7f0933069b3e853504d533f0a0ae8a7077c3bda"},
    {"74acf08260a5200f6c6858bd4bcee613",
     "dc91b1495c1fea4c3456fa0aadd00e023204dd4cc7a4b4bb115f95674b197005"},
    {"32e74636744047ff2a309a2212e16700",
     "77829eec2e7760fbbb651cdf80715fdf20974b53c5237eaa3f7f9224427a3ac0"},
    {"c0f62293d1cafa148e48b48497498bfe",
     "5555a14049267647d9680e36e709e46c82b4bc77e842d646cd18243b60987382"},
    {"27b8ce8f423a166afa8ae17cb20eca52",
     "2f3e74f3aeb89ea613e396f9abf2a24358df1b06fb85fc84ad02c0ceb4a6dd2a"},
    {"785e7bfbb28292939e5c860c409b0926",
     "855deb0088e503888277a3067aaa97c5f4c287d9dc2690a04e0d2a69bf344a87"},
    {"08c000c6fda55a3f8401db44bc63f51f",
     "6cb8ecc77381d5240a8318d686b1be92e2f5d2e70d2aaf725c63b0b87a250005"},
    {"9958eea1211f85e2e93ec0a171e745d1",
     "75f00ac38edbe5294d9166e9c42d74286f9dfc76d693d0d76d908e467af8485c"},
    {"c828d340963015c02c98047c2e8eefeb",
     "1a0a7ccea655f86e7c7a5760ef621dd0c6454cc78410a56495afe11cdce96c8b"},
    {"d8d78261f8944175f5d6b35da421ebf2",
     "2245bc2bfb0b81933efd27d3f557790d50451ef66ed8310945b5eb8c3d92d8d4"},
    {"899acfdb77b9cdfa3bb1129b045410e7",
     "dcec5cf53285bb043c554c7ea953598d283c910c341fc94eda02c2e1e8e86148"},
    {"01eb46d9d9d2c07a0bc9a2deabfb983c",
     "d6802fb9c8cc51c8e0d57251be034de02dc32682fae08bb3c9a89d1feb4d44bd"},
    {"a8a6b9fe1667e61dbd5af7ebeda89acc",
     "94112edd6f624adf96103ea6529491e37e2926aeb38547892edd40a2d90e3df2"},
    {"bf62b086233f8e38c08679ca37de1a94",
     "1424da7dfea68825cc71cf182fc6d2181992f9e3708ad01719b0e27784d2a6ee"},
    {"225b11ad9647ef92d332ee3535f266e8",
     "785b209cce10bf4785e84ea8533cf065f755ccab39556d24ef7e5d7df67d9495"},
    {"7d7d6b16f16245394550666da6d0ade2",
     "9905ec11d55cf034f183156b0e03736c10f3374050b17a3c76b50cca3b9be4d0"},
    {"3f0b51095db3978dfd35d74f57f41775",
     "a11fc5c7ba41fca737a1664f29faebe1dc677f44ae1a4147bad8804d9c981d30"},
    {"5e649e4cbe23f91047fd544ad1e3961f",
     "3e37bc2fb8bac1683a55a67eb991deedd8a11dac4826e0cd11ab58a250ad17c6"},
    {"325f4d6663d2ccf2e490c0069fea7eab",
     "39995a4b080b621ecc0fa20a68cf53e1ae14558896644264f8a082afb92535a3"},
    {"085588a3f660fff6ddb4dba568f47c53",
     "c6ef546e12ee56b98c743b3a228c5cb1bfc3f94394e083eecbe94a2a58e5b376"},
    {"c45ca34cac10602893e49f1b7cf9ec57",
     "8441248d8a096d5afe5ec1734afc22fe52094b3c3256659c6021bddbe5e584e7"},
    {"693590f0ea1799bf9610838763b0c87d",
     "b6cd4e49bf4c95cc921a65b1cbaa1cdc7a82f53ff8dc44630d1d6dc1c3008517"},
    {"5ed81a2109b5940df9f166355ad49799",
     "f07f917c111c514e7c082853e2b630918747904429673d18bf35c8d5984c012c"},
    {"47919582a0bb945ea9e8807971ec0bbc",
     "b27b61037be684924f5497ee79c784f09c971d8c8c3136f6270e0fd34775aa1b"},
    {"75084d12b3187adcd38eea577ba05cdd",
     "00c666e960132985e9c99dc98bf25782df791138d0f1252b69781694ed97d693"},
    {"1c68c501e004a14730279b365116f52a",
     "59b4904558092282298915cc266fc57bd7fa697c191f4f04b8329dc7d5caf1b5"},
    {"be5c5df280f8e68097787ee1f5322087",
     "f2abd38f0e4032ee6a04777e9314d5fbbcfac7a30acc8afc2860e51c31e18493"},
    {"2848f85dbb2fdf977001c993d66363d7",
     "9cc73b603f9d303472e23daf581ca3e6b5ec71f01e0199bb089f461cdcb01549"},
    {"b663681c2e05f84db3be1fea7cf8f9b3",
     "72ac56220abce5c4866ec53ae906d5a2dd3dd4a2715c3c59bf71d705d8a77abf"},
    {"3fbc714ee8166904b02465acdb180fe2",
     "36d435c4eaa9dfa16ee559201735ec017e76ada7d43ef3c789049378444e26d9"},
    {"2c434159498b876966b0e63aa54f8a15",
     "690797a85a4ca196af204046919b6f7d5df96b85d28130fb9ee357a24f311f24"},
    {"1e64802a75fd06dcdc53483bd621a1f3",
     "805f2702e76ff5d578052c965ded05a689d9293fd86c5584b0db399d33e9745c"},
    {"4506929ce5cac6afcee12bd44aaf184f",
     "cd77acfc16d0964a4c3ef06f0678a5c88d2d610de00f7b997676fea5b4d2ae9e"},
    {"be04c254e90b4c572685a02d1a10db90",
     "2c0b373b4a62770395098399a7d08ca18fce440e3b6c35a22e5910eaf515b72c"},
    {"53101e3cd0b41d5400dbaaa0209ee648",
     "a8d188692c31c397b7ae11eaa7f0dc6e29d163237d550ed06048ae82a2017f1a"},
    {"f1cbd1981a3e96dd8bd353be75e80b2a",
     "d31ddae47dcd2029c9d590043edcb86d5c5b8b5ead0d8fd105410d542bc2245c"},
    {"8957274a0c73c7e54117ebbe2cc8dad5",
     "869e6b98103feedd0c18975d70ff79e02b18fb500655de8ac4b8c86429234ed3"},
    {"c73c116bb63669b1a2c2157ba50a1310",
     "6168465fcf5a1ba9062d951d7931ad1f3130ff2f6352935a3c6a5c3b9b4283dd"},
    {"393c7a1b8040d471816462e2f31993ee",
     "952159b19c3defd1f3b25a33f9321c0ca580aed36439aaf73bb6e261fb41260a"},
    {"818331f5ac0e1db15e54aa9d830c0843",
     "c0809a85e23292a977eef4d1abcc1fbfcf9c7f12bf79a52663efee20e89f6f98"},
    {"eb4f5ea7399850f19b90bf1aac465455",
     "90ae102c9a590d30c26a2305d2a579fb0057230a26320dba4f65dfd75b58ad9e"},
    {"6d90c0d4384f9fb0535412010fafa155",
     "84f1fe53d2ba24c112983a96d9c6f2c3fa5acf871bd69d2afd7786d611097132"},
    {"36cf1634e59ad048d46e026b44e7ac12",
     "9a90e386c83915c66e50efae09ac6033534b8747a104f6549b6307de672d00fe"},
    {"0ba0cb54e1a352ae7529be20c5eecea4",
     "c5b2584e1562a46c9c9c1b8d3e8fd8a3ad84a1687e9dc01a93e51fd3f2be9dce"},
    {"9c9130a9212eeedba9aba2850a70c33b",
     "bb0ab6cac60489fde61a6bab7ffa4b8f1b9d11d8827dd35eacdfef81c7461456"},
    {"6da048565cc55403a2ae12871b969ce4",
     "316db4fb6ba442421255da363883edea631130f181c14b6e3e67d5efc8f162d3"},
    {"c954eb7b4559a51ac3dc09a7191adea4",
     "979ffe53dc1a97ad0a09bd49f0d8d776508d91caf3096ddf25062ddceb75778d"},
    {"b600c1db7c51d739e6df62771eedd65b",
     "0b6da0f62183292321ce1e5ff575be60cdd80eded659731209ecb4e5e7592972"},
    {"478c1a7e94f10040f1809c14645d08f2",
     "060f264c94dce30fb46094295fcb9541c9d20d6274fdac725548498bcd071e3a"},
    {"cbaba3044cce4381e3b3b12690159284",
     "e9489d80fcdc14121b09e0b4341302e213d5c90010fa25828ba031286f2649d0"},
    {"a30e498217a1173991cd1ac970ffc413",
     "6e240128b8138c5d6a1c2ca5dda43a2dfc53e4f78009b7942a3a90876d3b70ff"},
    {"a93346caf0ed7f07a7420d09f9db460d",
     "3e1364726ecf0cc45c06edf2fea52c3219a164d5ffa149f1cc77c76aaf7b7fe6"},
    {"299cd0f7f04bc1381f6664993e32ac5d",
     "47399de5c9b42af03f279a8edddce361534b151257aa692c4ee357d2ac0df1fb"},
    {"03ec5dcbfa74e461e82e7cef26516bab",
     "69c46cbc1bce22963785a3c1572c68152cbc5b10bec4b66d13b7e8c32b727821"},
    {"f3edcf7800399806ee6e390fa4291450",
     "52d4bb3accd485d7f648f6a7424f0c64c7950496d601cccd97f1d7ce0d22d9b4"},
    {"22449320dd1d5c6103ee7f18679b315b",
     "5b98da8366c2a171d7cfa481d6fe6dcc11cce8c28e2ab87cd7a74b596da7327c"},
    {"74aa25180e5be24c48d041615f75f905",
     "065e5ac639b1728013206c103aed0cd3a66f2306df209ac26ebe8f75ed756b2d"},
    {"3c8b7076012d6b934479a0245f7233d6",
     "02b5ff6fca392fe92f30613444ee8b065f6706344c8daeb11b61506ba1ca09d1"},
    {"9a6296d95c6b2d89c4c14f8285ac6d00",
     "b93ef73d8c7a1a707e54563cbda4002f16b09a38349f4563c12670dbd28fa246"},
    {"415347fc61027814255c4f8e0ecfcdd5",
     "2301ad1e05a9ed3279358670298dec6fdb3e4fe7945c8aa00026f4f8d200d529"},
    {"41ad2c679fb6ab6cb64b8084b0b43ffc",
     "e7ee62432eb4bc55521221dd0e12c6bad74ab6cd804df7cc41354f796f0bb917"},
    {"3abf2a120a2fe8df224bc6e4b49e9612",
     "316f20d0333f8ab13c2901d1b66bdd72670951bb3d2bdedda175af7cb60a8f3e"},
    {"e1d4f60fe0d3e59c4ac6496db8fde35b",
     "3b1f7bce784c4800ebddfb8c271756e1d69c4ccf80845256c328c69c0e1cdc22"},
    {"d7c195d82459e788e9a947760fc62c4f",
     "453640a5fd7040af2886c58d60b11a3ec3789562905ad53bb2c30d3ae4292da9"},
    {"c6c697f7e0131f490c46dfb746448424",
     "71674382b6652ed39fee8963c5831a5c4f3dc2602ee4b39034cc2e9d02db388e"},
    {"d5af3850ffbe6333afd497d9281ed07d",
     "a3620e4edc0b5cd9fb11e0fa305739b8c6a76d07fe58f09243ffa47250c2234e"},
    {"28d2f83aa3c741349dbd6d8047198ff7",
     "5537a4237b7790336f2023354212ed98f2d64f56fa38d6c309a25709827fc3f9"},
    {"ab0c35ff1443427a80ee960511da9f6d",
     "ba76d3ba3edb066c6f4b4a5c0f398d29892ff14bcee7f658e70a7f13a9f0ac7c"},
    {"44e60d969a929f7763c4ed2bb9309f29",
     "86cd95d0eae3b5891b9f47069fe0aa75a710e5cccc0c3baf192e6ce2851d341a"},
    {"040889c289eb648bc12e0310fa2d70a5",
     "a116e1324ac686dfc31679e05b00b50ad8c11774d4093df5f5ce251e0ea20fab"},
    {"a0673bfa48b57f9984b325a9478487e9",
     "314d01fab8d3f9319db13d6be126f99d6a9bec150711266a225a65ab0464aaa4"},
    {"6419296ea786a2890b7a7320b5b5de21",
     "50de94b22d131db72a0d2ce17c45c533d681e9cbb1301cad77c64307fddd02d6"},
    {"2d360d686058c938616fa50d433e8783",
     "8d39d85637dd0efb6081853c1e79d6fb529a7302f5b630e3e5179a98652ad849"},
    {"18446b3eb7e034271e821d19959be1e3",
     "06d9beaa985777f78582088bb7c6d9563d7368b3743365052465b8e62b1fc7c8"},
    {"231b5a65e57cd741ab87f4b6b7f5ab92",
     "f7a5b556945006235fd104fddc2db61b64cc4c095dd812001a8aa7d35cd10b66"},
    {"7bd67a02233ad3e7f4b5731afa1e417b",
     "5479146e26b741b1c08ee25b4710b6089cf2b1f0236805fb571af600e5416054"},
    {"2f6ac122669ddc9b8bcc83cd614fc9c8",
     "d793ca94e5e4d52b5c41a47b5a89a2dba628ce1aed4ceda78239c953ab091770"},
    {"cfa5c1f2ad360f7fff42ead5457fb57f",
     "22fad9a89df993704eb84b0037c1b0eb94350d4b769c5b9d0dbdecbbfee1d8e9"},
    {"2c28488599d3139752a7d5f6e5d972ec",
     "bc0c3b29b2ed26a43f3eaf1362d50259fbe43b8a7664205d8f5745b80faa3c0d"},
    {"a60c8fe39977d9406bf6a55930d2d0f4",
     "0371584182115b5fb9e4cee6a7a712d6a35d31ad698f5bbcff0fe2513ff1337e"},
    {"be537abfff3718546ac1333469e4f62d",
     "6f3d424ab5761d989b1af0f3a615387eb06517d9b717ca0ce3aeaf6ccc934a32"},
    {"cdc915dfc51abc068a4dcd5dd809ae19",
     "29d78841b7277b32e0a661fde23f0ac481cf6fba3dca61581153e7d889e429d7"},
    {"bacc5023858e0dc2b3bb8571b6381fb6",
     "cd47ac0536afd5449d3278fe50419d5e76d235253c004e25b84602ead7a64e98"},
    {"ecba609cb36d9593092bc6e49f7bf304",
     "d597109991cb1814534444041efc69168b69b77bab88f0f1e1efe7d2ae134b42"},
    {"6ccb2e27d2d73dc7c720bcf903ebbacd",
     "9359cc28c446683db587b895f41c084e2b0490a0e110dbb5a8b7bd663278d433"},
    {"0e9a23ee41c5f308ada3f3f51c0c2478",
     "7522d4f1905ab7ae6a146f83d8d07105785fb58440a65417ce4fa31b1d9d51a4"},
    {"b883b7daedf0a4630b7cd19031d38d17",
     "c6f1c9c3bc866ef5c1f643fd078a3c7f5650480006db0af85d2ef0b16dd584e7"},
    {"b406d2f3a013767c5204d9b4d30a1b37",
     "1e165834354a190330fb5baa34e168f410dc50d01f2eb5c3c80312f4429eb5b0"},
    {"4ad030ec96cee91da87c7ab44e75783a",
     "f054efc98aaae568493d8124c94e3b7df69cc214ed5b5e6dc7d095e457bb242c"},
    {"2000a0059477489318148b83f71d198b",
     "19b4922127725342ea1950985f4d64b8b9dc53013f2d3b665d3ac33e254f23c8"},
    {"3c1624d68140ecca478159dc1bb4c320",
     "fb5229a683d4f03fcc06ed0d45a295ad773a0801cb05aa9367925f5959ae56db"},
    {"8935fa938baab561d7cb9715dbed6e85",
     "2629edf3c140070900c20a99025b4613e9b70bf06ec0bcf5e622bbf0077dc049"},
    {"67f77599fd03edcdc006a0d751acfead",
     "4bef9ef3a9bde9b5a5ea19dd506beb248a330c4267aaae865016d230ba637649"},
    {"ea081e05d40516cf32ffb503c20d0d6a",
     "27ff56d1f9106ae4b993f55e7ae2bfb19d386accf56fb0f0470dc1bc4acfd57e"},
    {"779037490dc1b6d5736182e02fd3a256",
     "33c98ee9e2ca15d929c03c0db554d1bb49790a7114d9a16d6646b587eea34ac9"},
    {"f4d2b062fe239b667c3bede6621637e6",
     "e694a75f8ac4566a8e3a1c5384c2cbeab71ebe968eb1e3abdf5faf66dda46c1a"},
    {"4a0e731d27841eabc570f3f318b1cdc7",
     "b0b588dd61e7e39c3d238835f9e0c57ff52dfb0188060de13e4d45a65e919426"},
    {"ea8ed7343788ac59cc90fc2e3540b905",
     "ccd558797631efbf03a9ba77f7e7ff5924d2982a4dbb34d5f1817b0969f68306"},
    {"7028fd6ca9806c1582f977cadab0aab2",
     "482de5bb2fb3de3436603b73424fa4f1b3b186f41ae1bcd7e7f58e6b0ea44813"},
    {"21da4887c4b6ae1f6b6e3096b6601097",
     "afff0d87fadb0e0ca414255f3dad242b0418d8b9c6bc19aaed3b6589a2b4130f"},
    {"20131fbf9edfae52598993a0b99b9248",
     "106efb96e1188ba833f0e5f4d91825e36c5306de7c09002a6614eac283146db3"},
    {"06c06af7b6053ef9c4fdd17e79114e2e",
     "9b7fc01c284f692f3cac337a3ba9032d9c22b5b0744f633fef6ce4724b834d30"},
    {"9efccbf46e53ac19a8d243a3402fde37",
     "c90b2cc5c216ecee1240ac5c108ce81fe492e4445bcab7c13c7bf99b5a9b06fc"},
    {"ca160cf6e0153358ffb111a5c624acee",
     "51f6cd88379f85d0d7d4086e71608e1d14242066ded574a4b7dd5d002a1aa7b4"},
    {"f68674f3c396bf12dbb87682c1cd9a07",
     "db057a75ef112511a720d3e712bc7299cc1a3037fc53cd8fe11197fc6df0c6dc"},
};

LG_TEST(lengths_0_to_200)
{
    /* Each message in an exact-size heap copy: ASan sees any read past its end. */
    for (size_t n = 0; n <= PATTERN_MAX; n++) {
        uint8_t *m = malloc(n ? n : 1);
        CHECK(m != NULL);
        pattern(m, n);
        bool md5 = md5_is(m, n, length_rows[n].md5);
        bool sha = sha256_is(m, n, length_rows[n].sha256);
        free(m);
        char row[16];
        snprintf(row, sizeof(row), "len %zu", n);
        CHECK_ROW(md5, row);
        CHECK_ROW(sha, row);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 4. Alignment, NULL, input untouched.                                                       */

LG_TEST(any_alignment)
{
    uint8_t buf[PATTERN_MAX + 8], want_md5[LG_MD5_LEN], want_sha[LG_SHA256_LEN];
    uint8_t ref[PATTERN_MAX];
    pattern(ref, sizeof(ref));
    lg_md5(ref, sizeof(ref), want_md5);
    lg_sha256(ref, sizeof(ref), want_sha);
    for (size_t off = 0; off < 8; off++) {
        memset(buf, 0xee, sizeof(buf));
        memcpy(buf + off, ref, sizeof(ref));
        uint8_t d5[LG_MD5_LEN], d2[LG_SHA256_LEN];
        lg_md5(buf + off, sizeof(ref), d5);
        lg_sha256(buf + off, sizeof(ref), d2);
        CHECK(memcmp(d5, want_md5, sizeof(d5)) == 0);
        CHECK(memcmp(d2, want_sha, sizeof(d2)) == 0);
        CHECK(memcmp(buf + off, ref, sizeof(ref)) == 0);
    }
}

LG_TEST(null_with_length_zero)
{
    CHECK(md5_is(NULL, 0, "d41d8cd98f00b204e9800998ecf8427e"));
    CHECK(sha256_is(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

int main(void)
{
    LG_RUN(md5_rfc1321_suite);
    LG_RUN(sha256_fips180_vectors);
    LG_RUN(one_million_a);
    LG_RUN(lengths_0_to_200);
    LG_RUN(any_alignment);
    LG_RUN(null_with_length_zero);
    LG_TEST_END();
}
