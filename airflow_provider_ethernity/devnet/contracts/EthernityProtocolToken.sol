// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EthernityProtocol} from "./EthernityProtocol.sol";

/// @title Devnet Ethernity protocol in the bloxberg model: the protocol contract IS the token.
/// @notice On bloxberg the official protocol contract also holds the ERC-20 balances (TOKEN_ADDRESS ==
///         PROTOCOL_ADDRESS in the runner's network table): a requester never sends `approve`; `_addDORequest`
///         moves `maxPrice` whole tokens from its balance into the contract's own, `_addResultToOrder` pays the
///         node and `_cancelDORequest` refunds, all inside this one contract. Same protocol ABI as
///         EthernityProtocol plus the token functions requesters use (balanceOf, allowance, approve, faucet).
contract EthernityProtocolToken is EthernityProtocol {
    string public constant name = "Ethernity Devnet Token (bloxberg model)";
    string public constant symbol = "tETNY";
    uint8 public constant decimals = 18;
    uint256 public constant FAUCET_AMOUNT = 100 ether;

    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Mint(address receiver, uint256 value, string mintId);

    constructor() EthernityProtocol(address(this)) {}

    function transfer(address to, uint256 amount) external returns (bool) {
        _transfer(msg.sender, to, amount);
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= amount, "EthernityToken: insufficient allowance");
        if (allowed != type(uint256).max) {
            allowance[from][msg.sender] = allowed - amount;
        }
        _transfer(from, to, amount);
        return true;
    }

    /// @notice Test networks hand out tokens to anyone who asks.
    function faucet() external returns (bool success) {
        _mint(msg.sender, FAUCET_AMOUNT);
        return true;
    }

    function mint(address receiver, uint256 value, string calldata mintId) external {
        require(msg.sender == owner, "EthernityToken: caller is not the owner");
        _mint(receiver, value);
        emit Mint(receiver, value, mintId);
    }

    function _escrowIn(address from, uint256 amount) internal override {
        _transfer(from, address(this), amount);
    }

    function _escrowOut(address to, uint256 amount, string memory) internal override {
        _transfer(address(this), to, amount);
    }

    function _transfer(address from, address to, uint256 amount) internal {
        require(to != address(0), "EthernityToken: transfer to the zero address");
        require(balanceOf[from] >= amount, "EthernityToken: transfer amount exceeds balance");
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    function _mint(address to, uint256 amount) internal {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }
}
