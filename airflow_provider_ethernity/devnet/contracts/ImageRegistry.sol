// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Devnet image registry (v3 lookup of trustedzone images and their enclave certificates).
/// @notice ABI-compatible with the functions of the official registry that the runner calls.
contract ImageRegistry {
    struct Image {
        string ipfsHash;
        string certPublicKey;
        string version;
        string imageName;
        string dockerComposeHash;
    }

    address public owner;
    mapping(address => bool) public allowedWallets;
    mapping(bytes32 => Image) private latest; // keccak(imageName, version) -> latest image

    event ImageAdded(string ipfsHash, string publicKey, string version);
    event ImageRemoved(string ipfsHash);
    event AllowedWalletAdded(address indexed wallet);
    event AllowedWalletRemoved(address indexed wallet);

    constructor() {
        owner = msg.sender;
        allowedWallets[msg.sender] = true;
    }

    function addAllowedWallet(address wallet) external {
        require(msg.sender == owner, "ImageRegistry: caller is not the owner");
        allowedWallets[wallet] = true;
        emit AllowedWalletAdded(wallet);
    }

    function removeAllowedWallet(address wallet) external {
        require(msg.sender == owner, "ImageRegistry: caller is not the owner");
        allowedWallets[wallet] = false;
        emit AllowedWalletRemoved(wallet);
    }

    function addImage(
        string calldata ipfsHash,
        string calldata certPublicKey,
        string calldata version,
        string calldata imageName,
        string calldata dockerComposeHash
    ) external {
        require(allowedWallets[msg.sender], "ImageRegistry: wallet not allowed");
        require(bytes(ipfsHash).length > 0 && bytes(certPublicKey).length > 0, "ImageRegistry: empty image");
        latest[keccak256(abi.encode(imageName, version))] =
            Image(ipfsHash, certPublicKey, version, imageName, dockerComposeHash);
        emit ImageAdded(ipfsHash, certPublicKey, version);
    }

    /// @return ipfsHash, certPublicKey, dockerComposeHash of the latest image; empty strings if unknown.
    function getLatestTrustedZoneImageCertPublicKey(string calldata imageName, string calldata version)
        external
        view
        returns (string memory, string memory, string memory)
    {
        Image storage image = latest[keccak256(abi.encode(imageName, version))];
        return (image.ipfsHash, image.certPublicKey, image.dockerComposeHash);
    }

    function getLatestImageVersionPublicKey(string calldata imageName, string calldata version)
        external
        view
        returns (string memory, string memory, string memory)
    {
        Image storage image = latest[keccak256(abi.encode(imageName, version))];
        return (image.ipfsHash, image.certPublicKey, image.dockerComposeHash);
    }
}
