// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Overlaps validator rewards
/// @notice Once per eon the operator commits the Merkle root of every validator's
/// cumulative reward; a validator claims the difference between its cumulative
/// amount and what it already claimed. Funds arrive through `receive`.
/// @dev Leaf: keccak256(bytes.concat(keccak256(abi.encode(account, cumulative)))),
/// internal nodes hash sorted pairs (OpenZeppelin MerkleProof). Funds leave only by a
/// valid claim. A committed root is first PENDING: it becomes the claimable root
/// `challengeBlocks` blocks after the block it landed in, and until then the guardian
/// may cancel it. A newer commit while a root is pending replaces it (amounts are
/// cumulative, so the newer root subsumes the older). `challengeBlocks` x block time
/// must therefore be shorter than an eon, or roots keep replacing each other and none
/// ever becomes claimable. The guardian may also rotate the operator and itself; it
/// can never move funds.
contract OverlapsRewards is ReentrancyGuard {
    /// @notice The only address that may commit roots (the guardian may replace it).
    address public operator;
    /// @notice The only address that may cancel a pending root or rotate the roles.
    address public guardian;
    /// @notice How many blocks a committed root waits before claims may use it.
    uint64 public immutable challengeBlocks;

    // The claimable root as last written; `eon()`, `root()` and `committedTotal()`
    // report it with a matured pending root already promoted.
    uint64 private _eon;
    bytes32 private _root;
    uint256 private _committedTotal;

    // The pending root (eon 0: none) and the first block where it is claimable.
    uint64 private _pendingEon;
    bytes32 private _pendingRoot;
    uint256 private _pendingTotal;
    uint64 private _pendingClaimableAt;

    /// @notice The sum of everything ever paid out.
    uint256 public totalClaimed;
    /// @notice What each account has been paid so far.
    mapping(address account => uint256 amount) public claimed;

    /// @notice A root was committed for `eon`, promising `total` in all; claims may
    /// use it from block `claimableAt` on unless the guardian cancels it or a newer
    /// root replaces it before then.
    event RootCommitted(uint64 indexed eon, bytes32 root, uint256 total, uint64 claimableAt);
    /// @notice The guardian cancelled the pending root of `eon` in its challenge window.
    event RootCancelled(uint64 indexed eon, bytes32 root);
    /// @notice The guardian replaced the operator.
    event OperatorChanged(address indexed previous, address indexed current);
    /// @notice The guardian handed its role to `current`.
    event GuardianChanged(address indexed previous, address indexed current);
    /// @notice `account` was paid `amount`, bringing its claims to `cumulative`.
    event Claimed(address indexed account, uint256 amount, uint256 cumulative);
    /// @notice `from` sent `amount` to the contract.
    event Funded(address indexed from, uint256 amount);

    error ZeroOperator();
    error ZeroGuardian();
    error InvalidChallengeBlocks(uint64 given);
    error NotOperator(address caller);
    error NotGuardian(address caller);
    error StaleEon(uint64 latest, uint64 given);
    error TotalBelowClaimed(uint256 claimed, uint256 total);
    error Insolvent(uint256 available, uint256 total);
    error NoPendingRoot(uint64 eon);
    error AlreadyClaimable(uint64 eon);
    error NoRoot();
    error InvalidProof();
    error ExceedsCommittedTotal(uint256 committed, uint256 wouldBeClaimed);
    error TransferFailed();

    modifier onlyGuardian() {
        if (msg.sender != guardian) revert NotGuardian(msg.sender);
        _;
    }

    /// @param operator_ commits roots.
    /// @param guardian_ may cancel pending roots and rotate the operator.
    /// @param challengeBlocks_ blocks between a commit and its root being claimable
    /// (1 to 2^32).
    constructor(address operator_, address guardian_, uint64 challengeBlocks_) {
        if (operator_ == address(0)) revert ZeroOperator();
        if (guardian_ == address(0)) revert ZeroGuardian();
        // Zero would make every root claimable at once (no challenge at all); the
        // upper bound keeps `block.number + challengeBlocks` far from overflowing.
        if (challengeBlocks_ == 0 || challengeBlocks_ > type(uint32).max) {
            revert InvalidChallengeBlocks(challengeBlocks_);
        }
        operator = operator_;
        guardian = guardian_;
        challengeBlocks = challengeBlocks_;
        emit OperatorChanged(address(0), operator_);
        emit GuardianChanged(address(0), guardian_);
    }

    /// @notice Funds the rewards.
    /// @dev Promotes nothing: it stays cheap enough for a 2300-gas `transfer`, and
    /// promotion never depends on it (every view reports the effective state).
    receive() external payable {
        emit Funded(msg.sender, msg.value);
    }

    /// @notice The claimable eon (0 before any root matured).
    function eon() external view returns (uint64) {
        return _matured() ? _pendingEon : _eon;
    }

    /// @notice The claimable root; claims are proven against it.
    function root() external view returns (bytes32) {
        return _matured() ? _pendingRoot : _root;
    }

    /// @notice The sum of every cumulative amount in the claimable root.
    function committedTotal() external view returns (uint256) {
        return _matured() ? _pendingTotal : _committedTotal;
    }

    /// @notice The root still in its challenge window, if any (all zero when none):
    /// its eon, root, total and the first block where it is claimable.
    function pending()
        external
        view
        returns (uint64 eon_, bytes32 root_, uint256 total, uint64 claimableAt)
    {
        if (_pendingEon == 0 || _matured()) return (0, bytes32(0), 0, 0);
        return (_pendingEon, _pendingRoot, _pendingTotal, _pendingClaimableAt);
    }

    /// @notice Commits the reward root of `eon_`; `total` is the sum of its leaves. It
    /// becomes claimable `challengeBlocks` blocks from now, replacing any root still
    /// pending.
    /// @dev Refuses a total the contract could not pay: what it holds plus what it
    /// already paid must cover every cumulative amount in the tree.
    function commitRoot(uint64 eon_, bytes32 root_, uint256 total) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        _promote();
        // Against the claimable eon and, when one is live, the pending eon.
        uint64 latest = _pendingEon > _eon ? _pendingEon : _eon;
        if (eon_ <= latest) revert StaleEon(latest, eon_);
        if (total < totalClaimed) revert TotalBelowClaimed(totalClaimed, total);
        uint256 available = address(this).balance + totalClaimed;
        if (available < total) revert Insolvent(available, total);
        uint64 claimableAt = uint64(block.number) + challengeBlocks;
        _pendingEon = eon_;
        _pendingRoot = root_;
        _pendingTotal = total;
        _pendingClaimableAt = claimableAt;
        emit RootCommitted(eon_, root_, total, claimableAt);
    }

    /// @notice Cancels the pending root of `eon_` while it is in its challenge window;
    /// the operator may then commit that eon again.
    function cancelRoot(uint64 eon_) external onlyGuardian {
        _promote();
        // A root whose window is over is claimable: claims may already have used it.
        if (eon_ != 0 && eon_ == _eon) revert AlreadyClaimable(eon_);
        if (_pendingEon == 0 || _pendingEon != eon_) revert NoPendingRoot(eon_);
        bytes32 cancelled = _pendingRoot;
        _clearPending();
        emit RootCancelled(eon_, cancelled);
    }

    /// @notice Replaces the operator (the old one can commit nothing from now on).
    function setOperator(address operator_) external onlyGuardian {
        if (operator_ == address(0)) revert ZeroOperator();
        _promote();
        emit OperatorChanged(operator, operator_);
        operator = operator_;
    }

    /// @notice Hands the guardian role to `guardian_`.
    function setGuardian(address guardian_) external onlyGuardian {
        if (guardian_ == address(0)) revert ZeroGuardian();
        _promote();
        emit GuardianChanged(guardian, guardian_);
        guardian = guardian_;
    }

    /// @notice Pays `account` its `cumulative` reward minus what it already claimed,
    /// proven against the claimable root (never a pending one). Anyone may send it;
    /// the money goes to `account`.
    /// @return amount What was paid (0 when everything was already claimed).
    function claim(address account, uint256 cumulative, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 amount)
    {
        _promote();
        if (_root == bytes32(0)) revert NoRoot();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulative))));
        if (!MerkleProof.verifyCalldata(proof, _root, leaf)) revert InvalidProof();
        uint256 already = claimed[account];
        if (cumulative <= already) {
            return 0;
        }
        amount = cumulative - already;
        uint256 wouldBeClaimed = totalClaimed + amount;
        // A tree whose leaves sum to more than its committed total cannot drain
        // money promised to others.
        if (wouldBeClaimed > _committedTotal) {
            revert ExceedsCommittedTotal(_committedTotal, wouldBeClaimed);
        }
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

    /// Whether the pending root's challenge window is over.
    function _matured() private view returns (bool) {
        return _pendingEon != 0 && block.number >= _pendingClaimableAt;
    }

    /// Makes a matured pending root the claimable one.
    function _promote() private {
        if (!_matured()) return;
        _eon = _pendingEon;
        _root = _pendingRoot;
        _committedTotal = _pendingTotal;
        _clearPending();
    }

    function _clearPending() private {
        _pendingEon = 0;
        _pendingRoot = bytes32(0);
        _pendingTotal = 0;
        _pendingClaimableAt = 0;
    }
}
