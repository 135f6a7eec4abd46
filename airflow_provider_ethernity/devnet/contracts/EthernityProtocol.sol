// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title Devnet Ethernity protocol: DO requests, DP requests, orders and results.
/// @notice Speaks the official protocol's ABI for every function and event that requesters (the
///         official runner, this provider) and nodes use. The escrow is an ERC-20 token (as on the
///         Polygon-style networks): `_addDORequest` takes `maxPrice` whole tokens with transferFrom,
///         `_addResultToOrder` pays them to the node, `_cancelDORequest` returns them.
/// @dev Statuses: DO/DP request 0 available, 1 booked (stays so after its order closed), 2 canceled; order 0 open (placed,
///      waiting for the requester's approval), 1 processing (approved), 2 closed, 3 canceled.
contract EthernityProtocol {
    uint256 internal constant AVAILABLE = 0;
    uint256 internal constant BOOKED = 1;
    uint256 internal constant CANCELED = 2;

    uint256 internal constant ORDER_OPEN = 0;
    uint256 internal constant ORDER_PROCESSING = 1;
    uint256 internal constant ORDER_CLOSED = 2;

    struct Spec {
        uint8 cpu;
        uint8 mem;
        uint8 storage_;
        uint8 bandwidth;
        uint16 duration;
    }

    struct Metadata {
        string m1;
        string m2;
        string m3;
        string m4;
    }

    struct DORequest {
        address downer;
        Spec spec;
        uint8 instances;
        uint8 maxPrice;
        uint256 status;
        Metadata metadata;
    }

    struct DPRequest {
        address dproc;
        Spec spec;
        uint8 minPrice;
        uint256 status;
        uint32 createdAt;
        Metadata metadata;
    }

    struct Order {
        address downer;
        address dproc;
        uint256 doRequest;
        uint256 dpRequest;
        uint256 status;
        string result;
    }

    struct KeyValue {
        string key;
        string value;
    }

    IERC20 public immutable token;
    address public owner;

    DORequest[] internal doRequests;
    DPRequest[] internal dpRequests;
    Order[] internal orders;
    mapping(address => uint256[]) internal myDORequests;
    mapping(address => uint256[]) internal myDPRequests;
    mapping(address => uint256[]) internal myDOOrders;
    mapping(uint256 => KeyValue[]) internal requestMetadata;
    mapping(uint256 => KeyValue[]) internal dpRequestMetadata;

    event _addDORequestEV(address indexed _from, uint256 _rowNumber);
    event _addDPRequestEV(address indexed _from, uint256 _rowNumber);
    event _placeOrderEV(address indexed _from, uint256 _orderNumber);
    event _orderPlacedEV(uint256 _orderNumber, uint256 _doRequestId, uint256 _dpRequestId);
    event _orderApprovedEV(address indexed _downer, address _dproc, uint256 _orderNumber);
    event _orderClosedEV(uint256 _orderNumber);

    constructor(address token_) {
        token = IERC20(token_);
        owner = msg.sender;
    }

    // ------------------------------------------------------------------ requester (data owner)

    function _addDORequest(
        uint8 _cpuRequest,
        uint8 _memRequest,
        uint8 _storageRequest,
        uint8 _bandwidthRequest,
        uint16 _duration,
        uint8 _instances,
        uint8 _maxPrice,
        string calldata _metadata1,
        string calldata _metadata2,
        string calldata _metadata3,
        string calldata _metadata4
    ) external returns (uint256 _rowNumber) {
        require(_cpuRequest > 0 && _memRequest > 0 && _storageRequest > 0, "resources must be positive");
        require(_bandwidthRequest > 0 && _duration > 0 && _instances > 0, "resources must be positive");
        require(_maxPrice > 0, "price must be positive");
        _escrowIn(msg.sender, uint256(_maxPrice) * 1 ether);
        _rowNumber = doRequests.length;
        doRequests.push(
            DORequest(
                msg.sender,
                Spec(_cpuRequest, _memRequest, _storageRequest, _bandwidthRequest, _duration),
                _instances,
                _maxPrice,
                AVAILABLE,
                Metadata(_metadata1, _metadata2, _metadata3, _metadata4)
            )
        );
        myDORequests[msg.sender].push(_rowNumber);
        emit _addDORequestEV(msg.sender, _rowNumber);
    }

    function _cancelDORequest(uint256 _requestListItem) external {
        DORequest storage request = _doRequest(_requestListItem);
        require(request.downer == msg.sender, "not the owner of the request");
        require(request.status == AVAILABLE, "request is not available");
        request.status = CANCELED;
        _escrowOut(msg.sender, uint256(request.maxPrice) * 1 ether, "refund failed");
    }

    function _addMetadataToRequest(uint256 _requestListItem, string calldata _key, string calldata _value)
        external
        returns (uint256 _rowNumber)
    {
        require(_doRequest(_requestListItem).downer == msg.sender, "not the owner of the request");
        _rowNumber = requestMetadata[_requestListItem].length;
        requestMetadata[_requestListItem].push(KeyValue(_key, _value));
    }

    function _approveOrder(uint256 _orderItem) external returns (bool success) {
        Order storage order = _order(_orderItem);
        require(order.downer == msg.sender, "not the owner of the order");
        require(order.status == ORDER_OPEN, "order is not open");
        order.status = ORDER_PROCESSING;
        emit _orderApprovedEV(order.downer, order.dproc, _orderItem);
        return true;
    }

    // ------------------------------------------------------------------ node (data processor)

    function _addDPRequest(
        uint8 _cpuRequest,
        uint8 _memRequest,
        uint8 _storageRequest,
        uint8 _bandwidthRequest,
        uint16 _duration,
        uint8 _minPrice,
        string calldata _metadata1,
        string calldata _metadata2,
        string calldata _metadata3,
        string calldata _metadata4
    ) external returns (uint256 _rowNumber) {
        _rowNumber = dpRequests.length;
        dpRequests.push(
            DPRequest(
                msg.sender,
                Spec(_cpuRequest, _memRequest, _storageRequest, _bandwidthRequest, _duration),
                _minPrice,
                AVAILABLE,
                uint32(block.timestamp),
                Metadata(_metadata1, _metadata2, _metadata3, _metadata4)
            )
        );
        myDPRequests[msg.sender].push(_rowNumber);
        emit _addDPRequestEV(msg.sender, _rowNumber);
    }

    function _cancelDPRequest(uint256 _requestListItem) external {
        DPRequest storage request = _dpRequest(_requestListItem);
        require(request.dproc == msg.sender, "not the owner of the request");
        require(request.status == AVAILABLE, "request is not available");
        request.status = CANCELED;
    }

    function _addMetadataToDPRequest(uint256 _requestListItem, string calldata _key, string calldata _value)
        external
        returns (uint256 _rowNumber)
    {
        require(_dpRequest(_requestListItem).dproc == msg.sender, "not the owner of the request");
        _rowNumber = dpRequestMetadata[_requestListItem].length;
        dpRequestMetadata[_requestListItem].push(KeyValue(_key, _value));
    }

    /// @notice A node books a DO request. A request pinned to this node (metadata4 = its address)
    ///         needs no approval: the order starts in processing.
    function _placeOrder(uint256 _doRequestItem, uint256 _dpRequestItem) external returns (uint256 _orderNumber) {
        DORequest storage doRequest = _doRequest(_doRequestItem);
        DPRequest storage dpRequest = _dpRequest(_dpRequestItem);
        require(dpRequest.dproc == msg.sender, "not the owner of the DP request");
        require(doRequest.status == AVAILABLE, "DO request is not available");
        require(dpRequest.status == AVAILABLE, "DP request is not available");
        require(_fits(doRequest.spec, dpRequest.spec), "DP request does not cover the resources");
        require(doRequest.maxPrice >= dpRequest.minPrice, "price below the node's minimum");
        bytes memory pin = bytes(doRequest.metadata.m4);
        bool pinned = pin.length > 0;
        require(!pinned || _sameAddress(pin, msg.sender), "DO request is pinned to another node");

        doRequest.status = BOOKED;
        dpRequest.status = BOOKED;
        _orderNumber = orders.length;
        orders.push(
            Order(
                doRequest.downer,
                msg.sender,
                _doRequestItem,
                _dpRequestItem,
                pinned ? ORDER_PROCESSING : ORDER_OPEN,
                ""
            )
        );
        myDOOrders[doRequest.downer].push(_orderNumber);
        emit _placeOrderEV(msg.sender, _orderNumber);
        emit _orderPlacedEV(_orderNumber, _doRequestItem, _dpRequestItem);
    }

    /// @notice The enclave's result (`v3:<signed tx>:<cid>`); closes the order and pays the node.
    function _addResultToOrder(uint256 _orderItem, string calldata _result) external returns (bool success) {
        Order storage order = _order(_orderItem);
        require(order.dproc == msg.sender, "not the processor of the order");
        require(order.status == ORDER_PROCESSING, "order is not approved");
        order.result = _result;
        order.status = ORDER_CLOSED;
        DORequest storage doRequest = doRequests[order.doRequest];
        _escrowOut(order.dproc, uint256(doRequest.maxPrice) * 1 ether, "payment failed");
        emit _orderClosedEV(_orderItem);
        return true;
    }

    // ------------------------------------------------------------------ views

    function _getDORequest(uint256 _requestListItem)
        external
        view
        returns (
            address downer,
            uint8 cpuRequest,
            uint8 memoryRequest,
            uint8 storageRequest,
            uint8 bandwidthRequest,
            uint16 duration,
            uint8 maxPrice,
            uint256 status
        )
    {
        DORequest storage r = _doRequest(_requestListItem);
        return (r.downer, r.spec.cpu, r.spec.mem, r.spec.storage_, r.spec.bandwidth, r.spec.duration, r.maxPrice, r.status);
    }

    function _getDORequestMetadata(uint256 _requestListItem)
        external
        view
        returns (address downer, string memory metadata1, string memory metadata2, string memory metadata3, string memory metadata4)
    {
        DORequest storage r = _doRequest(_requestListItem);
        return (r.downer, r.metadata.m1, r.metadata.m2, r.metadata.m3, r.metadata.m4);
    }

    function _getDORequestsCount() external view returns (uint256 _length) {
        return doRequests.length;
    }

    function _getDPRequest(uint256 _requestListItem)
        external
        view
        returns (
            address dproc,
            uint8 cpuRequest,
            uint8 memoryRequest,
            uint8 storageRequest,
            uint8 bandwidthRequest,
            uint16 duration,
            uint8 minPrice,
            uint256 status
        )
    {
        DPRequest storage r = _dpRequest(_requestListItem);
        return (r.dproc, r.spec.cpu, r.spec.mem, r.spec.storage_, r.spec.bandwidth, r.spec.duration, r.minPrice, r.status);
    }

    function _getDPRequestWithCreationDate(uint256 _requestListItem)
        external
        view
        returns (
            address dproc,
            uint8 cpuRequest,
            uint8 memoryRequest,
            uint8 storageRequest,
            uint8 bandwidthRequest,
            uint16 duration,
            uint8 minPrice,
            uint256 status,
            uint32 createdAt
        )
    {
        DPRequest storage r = _dpRequest(_requestListItem);
        return (
            r.dproc,
            r.spec.cpu,
            r.spec.mem,
            r.spec.storage_,
            r.spec.bandwidth,
            r.spec.duration,
            r.minPrice,
            r.status,
            r.createdAt
        );
    }

    function _getDPRequestMetadata(uint256 _requestListItem)
        external
        view
        returns (address dproc, string memory metadata1, string memory metadata2, string memory metadata3, string memory metadata4)
    {
        DPRequest storage r = _dpRequest(_requestListItem);
        return (r.dproc, r.metadata.m1, r.metadata.m2, r.metadata.m3, r.metadata.m4);
    }

    function _getDPRequestsCount() external view returns (uint256 _length) {
        return dpRequests.length;
    }

    function _getOrder(uint256 _orderItem)
        external
        view
        returns (address downer, address dproc, uint256 doRequest, uint256 dpRequest, uint256 status)
    {
        Order storage o = _order(_orderItem);
        return (o.downer, o.dproc, o.doRequest, o.dpRequest, o.status);
    }

    function _getOrdersCount() external view returns (uint256 _length) {
        return orders.length;
    }

    function _getResultFromOrder(uint256 _orderItem) external view returns (string memory _Result) {
        return _order(_orderItem).result;
    }

    function _getMyDOOrders() external view returns (uint256[] memory req) {
        return myDOOrders[msg.sender];
    }

    function _getMyDORequests() external view returns (uint256[] memory req) {
        return myDORequests[msg.sender];
    }

    function _getMyDPRequests() external view returns (uint256[] memory req) {
        return myDPRequests[msg.sender];
    }

    function _getMetadataCountForRequest(uint256 _requestListItem) external view returns (uint256 _length) {
        return requestMetadata[_requestListItem].length;
    }

    function _getMetadataValueForRequest(uint256 _requestListItem, uint256 _metadataItem)
        external
        view
        returns (string memory key, string memory value)
    {
        KeyValue storage kv = requestMetadata[_requestListItem][_metadataItem];
        return (kv.key, kv.value);
    }

    function _getMetadataCountForDPRequest(uint256 _requestListItem) external view returns (uint256 _length) {
        return dpRequestMetadata[_requestListItem].length;
    }

    function _getMetadataValueForDPRequest(uint256 _requestListItem, uint256 _metadataItem)
        external
        view
        returns (string memory key, string memory value)
    {
        KeyValue storage kv = dpRequestMetadata[_requestListItem][_metadataItem];
        return (kv.key, kv.value);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Take the escrow of a new DO request from its owner (a separate ERC-20: with its allowance).
    ///      The bloxberg-model variant (EthernityProtocolToken) overrides both with its own balances.
    function _escrowIn(address from, uint256 amount) internal virtual {
        require(token.transferFrom(from, address(this), amount), "escrow failed");
    }

    /// @dev Pay the escrow out (to the node, or back to the owner).
    function _escrowOut(address to, uint256 amount, string memory reason) internal virtual {
        require(token.transfer(to, amount), reason);
    }

    function _doRequest(uint256 id) internal view returns (DORequest storage) {
        require(id < doRequests.length, "no such DO request");
        return doRequests[id];
    }

    function _dpRequest(uint256 id) internal view returns (DPRequest storage) {
        require(id < dpRequests.length, "no such DP request");
        return dpRequests[id];
    }

    function _order(uint256 id) internal view returns (Order storage) {
        require(id < orders.length, "no such order");
        return orders[id];
    }

    function _fits(Spec storage want, Spec storage have) internal view returns (bool) {
        return want.cpu <= have.cpu && want.mem <= have.mem && want.storage_ <= have.storage_
            && want.bandwidth <= have.bandwidth && want.duration <= have.duration;
    }

    /// @dev Case-insensitive comparison of a "0x..." hex string with an address.
    function _sameAddress(bytes memory text, address addr) internal pure returns (bool) {
        if (text.length != 42 || text[0] != "0" || (text[1] != "x" && text[1] != "X")) {
            return false;
        }
        uint160 value = uint160(addr);
        for (uint256 i = 41; i >= 2; i--) {
            uint8 c = uint8(text[i]);
            uint8 nibble;
            if (c >= 48 && c <= 57) nibble = c - 48;
            else if (c >= 97 && c <= 102) nibble = c - 87;
            else if (c >= 65 && c <= 70) nibble = c - 55;
            else return false;
            if (nibble != uint8(value & 0xf)) return false;
            value >>= 4;
        }
        return true;
    }
}
