"""Public test vectors, copied here so the suite runs without ../shared.

Each constant names its source; the same values are in
../shared/vectors/bitcoin-and-friends.json where that file exists.
"""

# Bitcoin Core src/kernel/chainparams.cpp, CreateGenesisBlock(1231006505, 2083236893, 0x1d00ffff, 1, ...)
GENESIS = {
    "version": 1,
    "prev": "0000000000000000000000000000000000000000000000000000000000000000",
    "merkle": "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    "time": 1231006505,
    "bits": 0x1D00FFFF,
    "nonce": 2083236893,
    "hash": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "header_hex": (
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67"
        "768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
    ),
}

# Real Bitcoin mainnet headers (any block explorer or `bitcoin-cli getblockheader`).
# Block 125552 is also the worked example of the Bitcoin wiki's "Block hashing algorithm" page.
MAINNET_HEADERS = [
    {
        "height": 1,
        "version": 1,
        "prev": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        "merkle": "0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098",
        "time": 1231469665,
        "bits": 0x1D00FFFF,
        "nonce": 2573394689,
        "hash": "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
    },
    {
        "height": 2,
        "version": 1,
        "prev": "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
        "merkle": "9b0fc92260312ce44e74ef369f5c66bbb85848f2eddd5a7a1cde251e54ccfdd5",
        "time": 1231469744,
        "bits": 0x1D00FFFF,
        "nonce": 1639830024,
        "hash": "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd",
    },
    {
        "height": 100000,
        "version": 1,
        "prev": "000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250",
        "merkle": "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766",
        "time": 1293623863,
        "bits": 0x1B04864C,
        "nonce": 274148111,
        "hash": "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506",
    },
    {
        "height": 125552,
        "version": 1,
        "prev": "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
        "merkle": "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3",
        "time": 1305998791,
        "bits": 0x1A44B9F2,
        "nonce": 2504433986,
        "hash": "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d",
    },
]

# The four transaction ids of Bitcoin block 100000 and its merkle root (header above).
BLOCK_100000_TXIDS = [
    "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
    "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
    "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
    "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
]

# Bitcoin Core src/test/pow_tests.cpp: CalculateNextWorkRequired with mainnet parameters.
POW_TESTS = [
    # name, nLastRetargetTime, pindexLast.nTime, pindexLast.nBits, expected
    ("get_next_work", 1261130161, 1262152739, 0x1D00FFFF, 0x1D00D86A),
    ("get_next_work_pow_limit", 1231006505, 1233061996, 0x1D00FFFF, 0x1D00FFFF),
    ("get_next_work_lower_limit_actual", 1279008237, 1279297671, 0x1C05A3F4, 0x1C0168FD),
    ("get_next_work_upper_limit_actual", 1263163443, 1269211443, 0x1C387F6F, 0x1D00E1FD),
]

# Bitcoin Core src/test/arith_uint256_tests.cpp (bignum_SetCompact):
# bits, value, negative, overflow, GetCompact(negative) re-encoding.
COMPACT_CASES = [
    (0x00000000, 0, False, False, 0x00000000),
    (0x00123456, 0, False, False, 0x00000000),
    (0x01003456, 0, False, False, 0x00000000),
    (0x02000056, 0, False, False, 0x00000000),
    (0x03000000, 0, False, False, 0x00000000),
    (0x04000000, 0, False, False, 0x00000000),
    (0x00923456, 0, False, False, 0x00000000),
    (0x01803456, 0, False, False, 0x00000000),
    (0x02800056, 0, False, False, 0x00000000),
    (0x03800000, 0, False, False, 0x00000000),
    (0x04800000, 0, False, False, 0x00000000),
    (0x01123456, 0x12, False, False, 0x01120000),
    (0x01FEDCBA, 0x7E, True, False, 0x01FE0000),
    (0x02123456, 0x1234, False, False, 0x02123400),
    (0x03123456, 0x123456, False, False, 0x03123456),
    (0x04123456, 0x12345600, False, False, 0x04123456),
    (0x04923456, 0x12345600, True, False, 0x04923456),
    (0x05009234, 0x92340000, False, False, 0x05009234),
    (0x20123456, 0x1234560000000000000000000000000000000000000000000000000000000000, False, False, 0x20123456),
]
COMPACT_OVERFLOW = [0xFF123456]

# RFC 8032 section 7.1, TEST 1 (Ed25519, empty message).
RFC8032_TEST_1 = {
    "secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "message": "",
    "signature": (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b"
    ),
}
# RFC 8032 section 7.1, TEST 2 (one-byte message 0x72).
RFC8032_TEST_2 = {
    "secret": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "public": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    "message": "72",
    "signature": (
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
        "387b2eaeb4302aeeb00d291612bb0c00"
    ),
}

# ethereum/consensus-specs specs/phase0/beacon-chain.md, is_slashable_attestation_data; the same four
# cases are ../shared/vectors/bitcoin-and-friends.json "ethereum_slashable_attestation_data".
# (a, b, slashable, why); a and b are (source epoch, target epoch, root label).
SLASHABLE_ATTESTATION_CASES = [
    ((0, 2, "A"), (1, 2, "B"), True, "double vote"),
    ((0, 7, "A"), (1, 6, "B"), True, "a surrounds b"),
    ((0, 2, "A"), (0, 2, "A"), False, "identical data"),
    ((0, 2, "A"), (1, 3, "B"), False, "neither double nor surround"),
]

# prysmaticlabs/prysm beacon-chain/core/helpers/shuffle_test.go, TestShuffleList_OK: ShuffleList of
# range(10) with the mainnet preset (SHUFFLE_ROUND_COUNT = 90). The same file's
# TestShuffleList_Vs_ShuffleIndex fixes the direction: shuffled[compute_shuffled_index(i, 10, seed)] == i.
# (seed hex, shuffled list)
PRYSM_SHUFFLE_LIST_CASES = [
    ("01800c" + "00" * 29, [0, 7, 8, 6, 3, 9, 4, 5, 2, 1]),
    ("02800c" + "00" * 29, [0, 5, 2, 1, 6, 8, 7, 3, 4, 9]),
]

# EIP-3076 (Slashing Protection Interchange Format), "Example JSON Instance". Its pubkey is a
# 48-byte BLS key; our validators have 32-byte Ed25519 keys.
EIP3076_EXAMPLE = {
    "metadata": {
        "interchange_format_version": "5",
        "genesis_validators_root": "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673",
    },
    "data": [
        {
            "pubkey": (
                "0xb845089a1457f811bfc000588fbb4e713669be8ce060ea6be3c6ece09afc3794106c91ca73acda5e5457122d58723bed"
            ),
            "signed_blocks": [
                {
                    "slot": "81952",
                    "signing_root": "0x4ff6f743a43f3b4f95350831aeaf0a122a1a392922c45d804280284a69eb850b",
                },
                {"slot": "81951"},
            ],
            "signed_attestations": [
                {
                    "source_epoch": "2290",
                    "target_epoch": "3007",
                    "signing_root": "0x587d6a4f59a58fe24f406e0502413e77fe1babddee641fda30034ed37ecc884d",
                },
                {"source_epoch": "2290", "target_epoch": "3008"},
            ],
        }
    ],
}
