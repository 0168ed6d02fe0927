// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Overlaps validator rewards
/// @notice Once per eon the operator commits the Merkle root of every validator's
/// cumulative reward; a validator claims the difference between its cumulative
/// amount and what it already claimed. Funds arrive through `receive`.
/// @dev Leaf: keccak256(bytes.concat(keccak256(abi.encode(account, cumulative)))),
/// internal nodes hash sorted pairs (OpenZeppelin MerkleProof). There is no way for
/// anyone, the operator included, to take funds out other than by a valid claim.
contract OverlapsRewards is ReentrancyGuard {
    /// @notice The only address that may commit roots.
    address public immutable operator;
    /// @notice The latest committed eon (0 before the first commitment).
    uint64 public eon;
    /// @notice The latest committed root; claims are proven against it.
    bytes32 public root;
    /// @notice The sum of every cumulative amount in the latest root.
    uint256 public committedTotal;
    /// @notice The sum of everything ever paid out.
    uint256 public totalClaimed;
    /// @notice What each account has been paid so far.
    mapping(address account => uint256 amount) public claimed;

    /// @notice A root was committed for `eon`, promising `total` in all.
    event RootCommitted(uint64 indexed eon, bytes32 root, uint256 total);
    /// @notice `account` was paid `amount`, bringing its claims to `cumulative`.
    event Claimed(address indexed account, uint256 amount, uint256 cumulative);
    /// @notice `from` sent `amount` to the contract.
    event Funded(address indexed from, uint256 amount);

    error ZeroOperator();
    error NotOperator(address caller);
    error StaleEon(uint64 latest, uint64 given);
    error TotalBelowClaimed(uint256 claimed, uint256 total);
    error Insolvent(uint256 available, uint256 total);
    error NoRoot();
    error InvalidProof();
    error ExceedsCommittedTotal(uint256 committed, uint256 wouldBeClaimed);
    error TransferFailed();

    constructor(address operator_) {
        if (operator_ == address(0)) revert ZeroOperator();
        operator = operator_;
    }

    /// @notice Funds the rewards.
    receive() external payable {
        emit Funded(msg.sender, msg.value);
    }

    /// @notice Commits the reward root of `eon_`; `total` is the sum of its leaves.
    /// @dev Refuses a total the contract could not pay: what it holds plus what it
    /// already paid must cover every cumulative amount in the tree.
    function commitRoot(uint64 eon_, bytes32 root_, uint256 total) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        if (eon_ <= eon) revert StaleEon(eon, eon_);
        if (total < totalClaimed) revert TotalBelowClaimed(totalClaimed, total);
        uint256 available = address(this).balance + totalClaimed;
        if (available < total) revert Insolvent(available, total);
        eon = eon_;
        root = root_;
        committedTotal = total;
        emit RootCommitted(eon_, root_, total);
    }

    /// @notice Pays `account` its `cumulative` reward minus what it already claimed,
    /// proven against the latest root. Anyone may send it; the money goes to `account`.
    /// @return amount What was paid (0 when everything was already claimed).
    function claim(address account, uint256 cumulative, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 amount)
    {
        if (root == bytes32(0)) revert NoRoot();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulative))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 already = claimed[account];
        if (cumulative <= already) {
            return 0;
        }
        amount = cumulative - already;
        uint256 wouldBeClaimed = totalClaimed + amount;
        // A tree whose leaves sum to more than its committed total cannot drain
        // money promised to others.
        if (wouldBeClaimed > committedTotal) revert ExceedsCommittedTotal(committedTotal, wouldBeClaimed);
        claimed[account] = cumulative;
        totalClaimed = wouldBeClaimed;
        emit Claimed(account, amount, cumulative);
        (bool ok,) = account.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice What `account` would be paid now for `cumulative` (not checking a proof).
    function claimable(address account, uint256 cumulative) external view returns (uint256) {
        uint256 already = claimed[account];
        return cumulative > already ? cumulative - already : 0;
    }
}
